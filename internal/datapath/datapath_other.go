//go:build !linux

package datapath

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

// errOS names the operating system so a user sees why enforcement is off.
var errOS = fmt.Errorf("%w (GOOS=%s; eBPF TCX needs Linux 6.6 or later)", ErrNotSupported, runtime.GOOS)

// Datapath is unavailable on this operating system; Open always fails, so
// none of its methods can be reached with a usable value.
type Datapath struct{}

// Open returns ErrNotSupported on this operating system.
func Open(Options) (*Datapath, error) { return nil, errOS }

func (*Datapath) Close() error                                     { return errOS }
func (*Datapath) Remove() error                                    { return errOS }
func (*Datapath) PinDir() string                                   { return "" }
func (*Datapath) SetConfig(Config) error                           { return errOS }
func (*Datapath) Stats() (Stats, error)                            { return Stats{}, errOS }
func (*Datapath) SetEndpoint(EndpointID, EndpointConfig) error     { return errOS }
func (*Datapath) Endpoint(EndpointID) (EndpointConfig, error)      { return EndpointConfig{}, errOS }
func (*Datapath) DeleteEndpoint(EndpointID) error                  { return errOS }
func (*Datapath) StopLocalDelivery(EndpointID) error               { return errOS }
func (*Datapath) Attach(EndpointID, int) error                     { return errOS }
func (*Datapath) Detach(EndpointID) error                          { return errOS }
func (*Datapath) AttachedEndpoints() ([]EndpointID, error)         { return nil, errOS }
func (*Datapath) SetIdentity(netip.Prefix, Identity) error         { return errOS }
func (*Datapath) SetIdentities([]IdentityEntry) error              { return errOS }
func (*Datapath) DeleteIdentity(netip.Prefix) error                { return errOS }
func (*Datapath) LookupIdentity(netip.Addr) (Identity, error)      { return 0, errOS }
func (*Datapath) Identities() ([]IdentityEntry, error)             { return nil, errOS }
func (*Datapath) UpdatePolicy([]PolicyEntry) error                 { return errOS }
func (*Datapath) DeletePolicy([]PolicyKey) error                   { return errOS }
func (*Datapath) PolicyEntries(EndpointID) ([]PolicyEntry, error)  { return nil, errOS }
func (*Datapath) SyncPolicy(EndpointID, []PolicyEntry) error       { return errOS }
func (*Datapath) UpdateCIDR([]CIDREntry) error                     { return errOS }
func (*Datapath) DeleteCIDR([]CIDREntry) error                     { return errOS }
func (*Datapath) CIDREntries(EndpointID) ([]CIDREntry, error)      { return nil, errOS }
func (*Datapath) SyncCIDR(EndpointID, []CIDREntry) error           { return errOS }
func (*Datapath) Counters() ([]Counter, error)                     { return nil, errOS }
func (*Datapath) Conntrack(func(CTEntry) bool) error               { return errOS }
func (*Datapath) FlushConntrack(EndpointID, CTFilter) (int, error) { return 0, errOS }
func (*Datapath) GCConntrack() (int, error)                        { return 0, errOS }
func (*Datapath) NewFlowReader() (*FlowReader, error)              { return nil, errOS }

// FlowReader is unavailable on this operating system.
type FlowReader struct{}

func (*FlowReader) SetDeadline(time.Time) {}
func (*FlowReader) Read() (Flow, error)   { return Flow{}, errOS }
func (*FlowReader) Close() error          { return errOS }
