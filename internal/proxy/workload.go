package proxy

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// Workload is a mesh workload on this node as the proxy needs to know it:
// who it is (namespace, name, service account), where its network lives
// (NetnsPath) and which addresses are its own.
type Workload struct {
	// Namespace and Name identify the workload (a pod); together they are
	// the key of AddWorkload and RemoveWorkload.
	Namespace string
	Name      string
	// ServiceAccount is the identity the workload's certificate carries:
	// spiffe://<trust domain>/ns/<Namespace>/sa/<ServiceAccount>.
	ServiceAccount string
	// NetnsPath is the bind-mounted network namespace of the workload, such
	// as /run/netns/<name>. Empty means the proxy's own namespace: then no
	// traffic is captured and only the HBONE listener is opened, on each of
	// IPs (see Proxy.Dial), which is what benchmarks and loopback tests use.
	NetnsPath string
	// IPs are the workload's own addresses; inbound tunnels may only name
	// one of them as their target.
	IPs []netip.Addr
}

// Key returns "namespace/name", the workload's key and the value of the
// workload labels in metrics.
func (w Workload) Key() string { return w.Namespace + "/" + w.Name }

// Principal returns the workload's SPIFFE ID in trustDomain, the string a
// peer sees in the URI SAN of its certificate.
func (w Workload) Principal(trustDomain string) string {
	if w.ServiceAccount == "" {
		return ""
	}
	return "spiffe://" + trustDomain + "/ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

// owns reports whether ip is one of the workload's addresses.
func (w Workload) owns(ip netip.Addr) bool {
	return slices.Contains(w.IPs, ip.Unmap())
}

// equal reports whether w and o describe the same workload in the same
// network with the same addresses, which makes AddWorkload a no-op.
func (w Workload) equal(o Workload) bool {
	return w.Namespace == o.Namespace && w.Name == o.Name && w.ServiceAccount == o.ServiceAccount &&
		w.NetnsPath == o.NetnsPath && slices.Equal(w.IPs, o.IPs)
}

// validate checks the fields the proxy relies on, so a malformed workload
// is refused before any socket or rule exists.
func (w Workload) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"namespace", w.Namespace}, {"name", w.Name}, {"service account", w.ServiceAccount}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		} else if strings.ContainsAny(f.v, "/ \t\n") {
			errs = append(errs, fmt.Errorf("%s %q contains '/' or white space", f.name, f.v))
		}
	}
	if w.NetnsPath != "" && !filepath.IsAbs(w.NetnsPath) {
		errs = append(errs, fmt.Errorf("netns path %q is not absolute", w.NetnsPath))
	}
	if len(w.IPs) == 0 {
		errs = append(errs, errors.New("no IPs"))
	}
	for _, ip := range w.IPs {
		if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() || ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("IP %v is not a plain unicast address", ip))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: workload %s: %w", ErrInvalidWorkload, w.Key(), err)
	}
	return nil
}

// Resolver maps a destination address to the workload that owns it. The
// mesh package implements it from its view of the cluster; the proxy asks
// it once per outbound connection and, for telemetry, per inbound one.
type Resolver interface {
	// Resolve returns the workload owning ip and whether that workload is
	// in the mesh (reachable through HBONE on its port 15008). ok is false
	// for addresses outside the mesh, which are passed through as plain
	// TCP.
	Resolve(ip netip.Addr) (w Workload, inMesh bool)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ip netip.Addr) (Workload, bool)

// Resolve calls f.
func (f ResolverFunc) Resolve(ip netip.Addr) (Workload, bool) { return f(ip) }
