package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/proxy"
)

// errUnknownWorkload is returned for a destination the authorizer was not
// built for; the proxy then denies.
var errUnknownWorkload = errors.New("unknown destination workload")

// meshAuthorizer implements proxy.Authorizer with a mesh.Engine: the
// adapter the node agent needs, reduced to what the benchmark uses. It
// selects the policies of each workload once, when it is built, so that a
// request costs only the evaluation.
type meshAuthorizer struct {
	views map[string]*mesh.WorkloadView // by proxy.Workload.Key()
}

var _ proxy.Authorizer = (*meshAuthorizer)(nil)

// newMeshAuthorizer returns an authorizer for ws, each labelled
// app=<name> as the benchmark's pods are.
func newMeshAuthorizer(e *mesh.Engine, ws ...proxy.Workload) *meshAuthorizer {
	a := &meshAuthorizer{views: make(map[string]*mesh.WorkloadView, len(ws))}
	for _, w := range ws {
		a.views[w.Key()] = e.Workload(meshWorkload(w))
	}
	return a
}

// meshWorkload describes w as policies select it.
func meshWorkload(w proxy.Workload) mesh.Workload {
	return mesh.Workload{Namespace: w.Namespace, Labels: map[string]string{"app": w.Name}, ServiceAccount: w.ServiceAccount}
}

func (a *meshAuthorizer) view(w proxy.Workload) (*mesh.WorkloadView, error) {
	v, ok := a.views[w.Key()]
	if !ok {
		return nil, fmt.Errorf("%w %s", errUnknownWorkload, w.Key())
	}
	return v, nil
}

// PeerMode maps the mesh's effective PeerAuthentication mode.
func (a *meshAuthorizer) PeerMode(dst proxy.Workload, port uint16) (proxy.PeerMode, error) {
	v, err := a.view(dst)
	if err != nil {
		return proxy.PeerStrict, err
	}
	switch m := v.PeerMode(port).Mode; m {
	case mesh.ModeStrict:
		return proxy.PeerStrict, nil
	case mesh.ModePermissive:
		return proxy.PeerPermissive, nil
	case mesh.ModeDisable:
		return proxy.PeerDisable, nil
	default:
		return proxy.PeerStrict, fmt.Errorf("unknown mTLS mode %q", m)
	}
}

// AuthorizeConn decides a connection as Istio's TCP filter chain does,
// unless the workload's policies need HTTP: then every request is decided
// by AuthorizeHTTP and the connection is let through to be parsed. The
// engine must see the same traffic once, as a connection or as requests,
// never both: as a connection, an ALLOW rule with HTTP fields matches
// nothing (Istio drops it from the TCP chain), so deciding both ways
// would refuse every connection that only an HTTP rule allows.
func (a *meshAuthorizer) AuthorizeConn(c proxy.Connection) (proxy.Decision, error) {
	v, err := a.view(c.Destination)
	if err != nil {
		return proxy.Decision{}, err
	}
	if v.NeedsHTTP() {
		return proxy.Decision{Allow: true, Reason: "decided per HTTP request"}, nil
	}
	return decision(v.Authorize(connRequest(c))), nil
}

// NeedsHTTP reports whether the workload's policies need HTTP attributes.
func (a *meshAuthorizer) NeedsHTTP(dst proxy.Workload, _ uint16) (bool, error) {
	v, err := a.view(dst)
	if err != nil {
		return false, err
	}
	return v.NeedsHTTP(), nil
}

// AuthorizeHTTP decides one request. The proxy forwards the path exactly
// as sent, and the engine must match the path that is forwarded, so a
// path that Istio's default normalization (BASE) would change is refused
// with 400 rather than matched in one form and forwarded in another.
func (a *meshAuthorizer) AuthorizeHTTP(r proxy.Request) (proxy.Decision, error) {
	v, err := a.view(r.Destination)
	if err != nil {
		return proxy.Decision{}, err
	}
	norm, err := mesh.NormalizePath(r.Path, mesh.NormalizeBase)
	if err != nil || norm != r.Path {
		reason := "path is not in normal form"
		if err != nil {
			reason = err.Error()
		}
		return proxy.Decision{Status: http.StatusBadRequest, Body: "Bad Request", Reason: reason}, nil
	}
	mr := connRequest(r.Connection)
	mr.HTTP = true
	mr.Host, mr.Method, mr.Path, mr.Headers = r.Host, r.Method, r.Path, r.Header
	return decision(v.Authorize(mr)), nil
}

// connRequest is what the engine knows of a connection.
func connRequest(c proxy.Connection) mesh.Request {
	return mesh.Request{
		SourcePrincipal: strings.TrimPrefix(c.SourcePrincipal, "spiffe://"),
		SourceIP:        c.Source.Addr(),
		DestinationIP:   destinationIP(c.Destination, c.Source.Addr()),
		DestinationPort: c.DestinationPort,
		SNI:             c.SNI,
	}
}

// destinationIP is the workload's address of the source's family: the
// proxy tells which workload a tunnel reached, not which of its addresses.
func destinationIP(w proxy.Workload, src netip.Addr) netip.Addr {
	for _, ip := range w.IPs {
		if ip.Is4() == src.Unmap().Is4() {
			return ip
		}
	}
	if len(w.IPs) > 0 {
		return w.IPs[0]
	}
	return netip.Addr{}
}

// decision translates the engine's verdict. The reason is rendered only
// for denials, which are logged; an allowed request costs no formatting.
func decision(d mesh.Decision) proxy.Decision {
	pd := proxy.Decision{Allow: d.Allow}
	if d.Action != "" {
		pd.Policy = d.Policy.String()
	}
	if !d.Allow {
		pd.Reason = d.Reason()
	}
	return pd
}
