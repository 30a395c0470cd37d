//go:build !linux

package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netns"
)

// NFTableName is the nftables table the proxy installs in captured
// workloads' namespaces on Linux.
const NFTableName = "rampart-proxy"

// errOS names the operating system so a user sees why the proxy is off.
var errOS = fmt.Errorf("%w (GOOS=%s; the proxy needs Linux network namespaces and nftables)", ErrNotSupported, runtime.GOOS)

func openNetns(string) (netns.NsHandle, error)                       { return netns.None(), errOS }
func listen(netns.NsHandle, Workload, Ports) ([]net.Listener, error) { return nil, errOS }
func installCapture(netns.NsHandle, Ports) error                     { return errOS }
func removeCapture(netns.NsHandle) error                             { return nil }
func originalDst(net.Conn) (netip.AddrPort, error)                   { return netip.AddrPort{}, errOS }

func dialIn(context.Context, netns.NsHandle, netip.AddrPort, bool, netip.AddrPort) (*net.TCPConn, error) {
	return nil, errOS
}
