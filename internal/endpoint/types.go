package endpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Errors returned by the Manager. Callers test them with errors.Is; the
// returned errors wrap them with the endpoint or file concerned.
var (
	// ErrNotSupported is returned by New on operating systems other than
	// Linux.
	ErrNotSupported = errors.New("endpoints are not supported on this operating system")
	// ErrNotFound means no endpoint has the given namespace and name.
	ErrNotFound = errors.New("endpoint not found")
	// ErrExists means an endpoint with the namespace and name exists
	// already, or a kernel object with its derived name does.
	ErrExists = errors.New("endpoint exists")
	// ErrRunning means the endpoint's process is running already.
	ErrRunning = errors.New("endpoint process is running")
	// ErrBroken means the endpoint's kernel objects are missing or were
	// replaced; it can only be deleted.
	ErrBroken = errors.New("endpoint is broken")
	// ErrExhausted means a pod CIDR or the endpoint id space is full.
	ErrExhausted = errors.New("no free address or endpoint id")
	// ErrLocked means another Manager holds the state directory.
	ErrLocked = errors.New("state directory is in use by another manager")
	// ErrClosed means the Manager was closed (or cleaned up).
	ErrClosed = errors.New("endpoint manager is closed")
	// ErrInvalid means a configuration, spec or command is not valid.
	ErrInvalid = errors.New("invalid")
)

// Addresses every endpoint uses as its default gateways. Both are
// link-local, so they never take an address out of a pod CIDR and are the
// same for every endpoint: the host side of each veth answers for them.
var (
	GatewayIPv4 = netip.MustParseAddr("169.254.1.1")
	GatewayIPv6 = netip.MustParseAddr("fe80::1")
)

// Config configures a Manager.
type Config struct {
	// StateDir holds the Manager's state: ipam.json, host.json,
	// endpoints/<id>.json and logs/<id>.log. The Manager owns it; it is
	// created with mode 0700 if missing.
	StateDir string
	// Instance names this Manager among others on the same machine: one
	// to nine characters [a-z0-9], starting with a letter. It prefixes
	// network namespace names ("<instance>-"), host interface names
	// ("rp<instance>") and the nftables table ("rampart-<instance>").
	Instance string
	// PodCIDR4 and PodCIDR6 are the pools endpoint addresses come from.
	// At least one must be set; a zero prefix turns that family off. IPv4
	// needs /30 or larger, IPv6 /126 or larger.
	PodCIDR4 netip.Prefix
	PodCIDR6 netip.Prefix
	// Logger receives the Manager's records, from New on; nil means
	// slog.Default(). SetLogger replaces it later.
	Logger *slog.Logger
	// Uplinks names the host interfaces through which traffic from outside
	// the pod CIDRs arrives. Replies to masqueraded connections are
	// forwarded from them, so they get per-interface forwarding. Empty
	// means the interfaces of the main table's default routes at the time
	// of Create or Restore.
	Uplinks []string
	// NetNSDir is where named network namespaces are bind-mounted.
	// Default /run/netns, the directory `ip netns` uses.
	NetNSDir string
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL
	// when the context has no earlier deadline. Default 10 s.
	StopTimeout time.Duration
}

// DefaultNetNSDir is where `ip netns` and the Manager keep named network
// namespaces.
const DefaultNetNSDir = "/run/netns"

// DefaultStopTimeout is the grace period between SIGTERM and SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// withDefaults returns c with defaults filled in, or an error naming the
// first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.StateDir == "" {
		return c, fmt.Errorf("%w config: StateDir is empty", ErrInvalid)
	}
	if err := ValidateInstance(c.Instance); err != nil {
		return c, err
	}
	if !c.PodCIDR4.IsValid() && !c.PodCIDR6.IsValid() {
		return c, fmt.Errorf("%w config: neither PodCIDR4 nor PodCIDR6 is set", ErrInvalid)
	}
	if c.PodCIDR4.IsValid() {
		if err := validatePool(c.PodCIDR4, 4); err != nil {
			return c, fmt.Errorf("%w config: PodCIDR4: %v", ErrInvalid, err)
		}
	}
	if c.PodCIDR6.IsValid() {
		if err := validatePool(c.PodCIDR6, 6); err != nil {
			return c, fmt.Errorf("%w config: PodCIDR6: %v", ErrInvalid, err)
		}
	}
	for i, u := range c.Uplinks {
		if u == "" || u == "." || u == ".." || len(u) > 15 || strings.ContainsAny(u, "/ \t\n") {
			return c, fmt.Errorf("%w config: Uplinks[%d]: %q is not an interface name", ErrInvalid, i, u)
		}
	}
	if c.NetNSDir == "" {
		c.NetNSDir = DefaultNetNSDir
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c, nil
}

// Key names an endpoint: a namespace and a name, unique per Manager.
type Key struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String returns "namespace/name".
func (k Key) String() string { return k.Namespace + "/" + k.Name }

// ParseKey parses "namespace/name", or "name" in the namespace "default".
func ParseKey(s string) (Key, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = DefaultNamespace, s
	}
	k := Key{Namespace: ns, Name: name}
	if err := k.validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

func (k Key) validate() error {
	if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
		return fmt.Errorf("%w namespace %q: %s", ErrInvalid, k.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(k.Name); len(errs) > 0 {
		return fmt.Errorf("%w name %q: %s", ErrInvalid, k.Name, strings.Join(errs, "; "))
	}
	return nil
}

// DefaultNamespace is used when a Spec or key names no namespace.
const DefaultNamespace = "default"

// Spec is what an endpoint is asked to be: who it is (namespace, name,
// labels, service account) and which ports it serves. The Manager uses
// only the key; the rest is carried for identity and policy.
type Spec struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount"`
	Ports          []Port            `json:"ports,omitempty"`
}

// Key returns the spec's namespace and name.
func (s Spec) Key() Key { return Key{Namespace: s.Namespace, Name: s.Name} }

// Port is a port the endpoint serves, as in a container's ports.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"` // TCP, UDP or SCTP
}

// Normalize fills in defaults (namespace and service account "default",
// protocol TCP) and validates s like the Kubernetes API server would.
func (s Spec) Normalize() (Spec, error) {
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.ServiceAccount == "" {
		s.ServiceAccount = "default"
	}
	if err := s.Key().validate(); err != nil {
		return s, err
	}
	if errs := validation.IsDNS1123Subdomain(s.ServiceAccount); len(errs) > 0 {
		return s, fmt.Errorf("%w serviceAccount %q: %s", ErrInvalid, s.ServiceAccount, strings.Join(errs, "; "))
	}
	for k, v := range s.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return s, fmt.Errorf("%w label key %q: %s", ErrInvalid, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return s, fmt.Errorf("%w label %s value %q: %s", ErrInvalid, k, v, strings.Join(errs, "; "))
		}
	}
	ports := make([]Port, len(s.Ports))
	for i, p := range s.Ports {
		if p.Protocol == "" {
			p.Protocol = "TCP"
		}
		switch p.Protocol {
		case "TCP", "UDP", "SCTP":
		default:
			return s, fmt.Errorf("%w ports[%d].protocol %q: want TCP, UDP or SCTP", ErrInvalid, i, p.Protocol)
		}
		if p.Port == 0 {
			return s, fmt.Errorf("%w ports[%d].port: must be 1-65535", ErrInvalid, i)
		}
		if p.Name != "" {
			if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
				return s, fmt.Errorf("%w ports[%d].name %q: %s", ErrInvalid, i, p.Name, strings.Join(errs, "; "))
			}
		}
		ports[i] = p
	}
	s.Ports = ports
	return s, nil
}

// State is where an endpoint is in its lifecycle.
type State string

const (
	// StateCreating: Create has started but not finished. Seen after a
	// crash during Create; Restore reports such endpoints as broken.
	StateCreating State = "Creating"
	// StateReady: the network is in place and no process has run.
	StateReady State = "Ready"
	// StateRunning: the endpoint's process runs.
	StateRunning State = "Running"
	// StateExited: the process ran and exited (or was stopped).
	StateExited State = "Exited"
	// StateBroken: Restore found the namespace or veth missing or
	// replaced; only Delete helps. Endpoint.Problem says why.
	StateBroken State = "Broken"
)

// Endpoint is an endpoint as the Manager knows it. The same structure is
// persisted as endpoints/<id>.json.
type Endpoint struct {
	// ID is unique among the Manager's endpoints (1-65535). It names the
	// host interface and the state files, and is the datapath's endpoint
	// id. IDs are handed out round-robin, so a deleted ID is reused as
	// late as possible.
	ID   uint16 `json:"id"`
	Spec Spec   `json:"spec"`
	// IPv4 and IPv6 are the endpoint's addresses (zero when the family
	// is off), assigned to eth0 inside the namespace as /32 and /128.
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	IPv6 netip.Addr `json:"ipv6,omitzero"`
	// NetNSPath is the bind mount of the endpoint's network namespace,
	// <NetNSDir>/<netns name>.
	NetNSPath string `json:"netnsPath"`
	// HostIfName and HostIfIndex identify the host side of the veth, the
	// interface the datapath attaches to. HostMAC is its address, which
	// the namespace has as a permanent neighbour for both gateways.
	HostIfName  string `json:"hostIfName"`
	HostIfIndex int    `json:"hostIfIndex"`
	HostMAC     string `json:"hostMAC,omitempty"`
	// MAC is the address of eth0 in the namespace, which the datapath
	// writes as the Ethernet destination when it delivers a packet from
	// another endpoint straight into the namespace. Records written before
	// it existed get it from Restore.
	MAC string `json:"mac,omitempty"`
	// LogPath is the file the process's stdout and stderr go to.
	LogPath string    `json:"logPath"`
	Created time.Time `json:"created"`
	State   State     `json:"state"`
	// Problem says why the endpoint is broken.
	Problem string `json:"problem,omitempty"`
	// Process is the last process started, nil before the first Start.
	Process *Process `json:"process,omitempty"`
}

// Key returns the endpoint's namespace and name.
func (e Endpoint) Key() Key { return e.Spec.Key() }

// Process records a process started by Start. PID, StartTime and BootID
// together identify it: a PID alone may be reused by another process
// once this one is gone.
type Process struct {
	Args []string `json:"args"`
	PID  int      `json:"pid"`
	// StartTime is field 22 of /proc/<pid>/stat: clock ticks after boot.
	StartTime uint64 `json:"startTime"`
	// BootID is /proc/sys/kernel/random/boot_id when the process started.
	BootID  string    `json:"bootID"`
	Started time.Time `json:"started"`
	// Exited is when the Manager saw the process end. ExitCode is nil
	// when unknown: the process was adopted by Restore (only its parent
	// can read its status) or died from a signal (then Signal is set).
	Exited   *time.Time `json:"exited,omitempty"`
	ExitCode *int       `json:"exitCode,omitempty"`
	Signal   string     `json:"signal,omitempty"`
}

// Command is what Start runs inside an endpoint.
type Command struct {
	// Args is the program and its arguments. A program without a slash
	// is looked up in the PATH of Env (not the Manager's).
	Args []string
	// Env is the complete environment; the Manager's own environment is
	// never inherited. Without a PATH entry, DefaultPath is added.
	Env []string
	// Dir is the working directory, "/" when empty.
	Dir string
}

// DefaultPath is the PATH a process gets when its Env has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// RestoreReport says what Restore found.
type RestoreReport struct {
	// Endpoints are all endpoints in the state directory, after Restore.
	Endpoints []Endpoint
	// Running are the endpoints whose process still runs and was adopted.
	Running []Key
	// Exited are endpoints whose process ended while no Manager watched.
	Exited []Key
	// Broken are endpoints whose namespace or veth is gone or replaced.
	Broken []BrokenEndpoint
	// Orphans are kernel objects with this instance's prefix that no
	// endpoint owns (network namespace paths and interface names). Restore
	// leaves them; Cleanup removes them.
	Orphans []string
	// Released are IPAM allocations that no endpoint record owned (a
	// crash between allocation and record); Restore released them.
	Released []Allocation
}

// BrokenEndpoint names a broken endpoint and why it is broken.
type BrokenEndpoint struct {
	Key     Key
	Problem string
}

func (b BrokenEndpoint) String() string { return b.Key.String() + ": " + b.Problem }
