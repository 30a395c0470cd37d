package meshnode

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/proxy"
)

// CiliumDeniedBody is what Cilium's proxy answers a request that no
// rules.http entry allows.
const CiliumDeniedBody = "Access denied"

// Snapshot is the policy the proxy enforces. The agent builds a new one
// whenever anything changes and hands it over whole, so a connection is
// decided by one consistent state.
type Snapshot struct {
	// Mesh holds the Istio security policies.
	Mesh *mesh.Engine
	// Repo is the resolved NetworkPolicy and CiliumNetworkPolicy state the
	// kernel's tables were compiled from; nil skips the L3/L4 and Cilium
	// L7 checks (benchmarks). It must not be changed after Update.
	Repo *policy.Repository
	// Workloads are the proxy's workloads by "namespace/name".
	Workloads map[string]Member
}

// Member is a workload the proxy serves.
type Member struct {
	Labels         map[string]string
	ServiceAccount string
	// Mesh is set for workloads in the mesh. A workload that is in the
	// proxy only because Cilium L7 rules apply to it takes plaintext, as
	// it would through Cilium's proxy.
	Mesh bool
	// L7Ports are the ports with Cilium rules.http for some peer; zero
	// means every port.
	L7Ports []uint16
	// HTTPPorts are ports that speak HTTP by Istio's protocol selection
	// (a port named http, http-*, http2, grpc...): requests on them are
	// decided one by one, so a denial is an HTTP 403, not a reset.
	HTTPPorts []uint16
}

// IsHTTPPortName is mesh.IsHTTPPortName.
func IsHTTPPortName(name string) bool { return mesh.IsHTTPPortName(name) }

// parsesHTTP reports whether connections to port are parsed as HTTP.
func (m Member) parsesHTTP(v *mesh.WorkloadView, port uint16) bool {
	return (v != nil && v.NeedsHTTP()) || hasPort(m.L7Ports, port) || slices.Contains(m.HTTPPorts, port)
}

// Authorizer decides for the proxy in the order the issue and Istio give:
// the L3/L4 verdict for the inner port (the same resolved policy the
// kernel enforces, so NetworkPolicy means the same inside the tunnel),
// PeerAuthentication, then per HTTP request RequestAuthentication,
// AuthorizationPolicy and Cilium rules.http. It implements
// proxy.Authorizer.
type Authorizer struct {
	// PathNormalization is the form request paths are matched and
	// forwarded in (Istio's meshConfig.pathNormalization); the zero
	// value is Istio's default, BASE. Set it before the first request.
	PathNormalization mesh.PathNormalization

	snap atomic.Pointer[state]
}

type state struct {
	Snapshot
	views map[string]*mesh.WorkloadView
	// endpoints indexes Repo's endpoints by address once per snapshot:
	// Repository.EndpointByAddr sorts and scans every endpoint, too slow
	// for every connection.
	endpoints map[netip.Addr]*policy.Endpoint
}

// Update replaces the policy; connections in progress keep the decision
// they got.
func (a *Authorizer) Update(s Snapshot) {
	st := &state{Snapshot: s, views: map[string]*mesh.WorkloadView{}, endpoints: map[netip.Addr]*policy.Endpoint{}}
	if s.Repo != nil {
		for _, e := range s.Repo.Endpoints() {
			for _, a := range e.IPs {
				if _, dup := st.endpoints[a]; !dup { // the first owner, as EndpointByAddr
					st.endpoints[a] = e
				}
			}
		}
	}
	if s.Mesh != nil {
		for k, m := range s.Workloads {
			ns, _, _ := strings.Cut(k, "/")
			st.views[k] = s.Mesh.Workload(mesh.Workload{Namespace: ns, Labels: m.Labels, ServiceAccount: serviceAccount(m.ServiceAccount)})
		}
	}
	a.snap.Store(st)
}

var errNoPolicy = errors.New("no policy loaded yet")

func (a *Authorizer) lookup(w proxy.Workload) (*state, Member, *mesh.WorkloadView, error) {
	st := a.snap.Load()
	if st == nil {
		return nil, Member{}, nil, errNoPolicy
	}
	k := w.Key()
	m, ok := st.Workloads[k]
	if !ok {
		return nil, Member{}, nil, fmt.Errorf("workload %s is not served by the proxy", k)
	}
	return st, m, st.views[k], nil
}

// PeerMode maps the workload's PeerAuthentication mode for port.
func (a *Authorizer) PeerMode(dst proxy.Workload, port uint16) (proxy.PeerMode, error) {
	_, m, v, err := a.lookup(dst)
	if err != nil {
		return proxy.PeerStrict, err
	}
	if !m.Mesh || v == nil {
		return proxy.PeerPermissive, nil
	}
	switch v.PeerMode(port).Mode {
	case mesh.ModeStrict:
		return proxy.PeerStrict, nil
	case mesh.ModeDisable:
		return proxy.PeerDisable, nil
	}
	return proxy.PeerPermissive, nil
}

// NeedsHTTP is true when Istio policy looks at requests or Cilium L7 rules
// cover the port.
func (a *Authorizer) NeedsHTTP(dst proxy.Workload, port uint16) (bool, error) {
	_, m, v, err := a.lookup(dst)
	if err != nil {
		return false, err
	}
	return m.parsesHTTP(v, port), nil
}

func hasPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == 0 || q == p {
			return true
		}
	}
	return false
}

// AuthorizeConn checks L3/L4 for the inner port, then, when requests need
// not be parsed, AuthorizationPolicy for the connection.
func (a *Authorizer) AuthorizeConn(c proxy.Connection) (proxy.Decision, error) {
	st, m, v, err := a.lookup(c.Destination)
	if err != nil {
		return proxy.Decision{}, err
	}
	if d, ok := st.l4(c, nil); !ok {
		return d, nil
	}
	if m.parsesHTTP(v, c.DestinationPort) {
		return proxy.Decision{Allow: true, Reason: "decided per request"}, nil
	}
	if v == nil {
		return proxy.Decision{Allow: true, Reason: "no mesh policy"}, nil
	}
	req := meshRequest(c)
	return fromMesh(v.Authorize(req)), nil
}

// AuthorizeHTTP authenticates the request's JWTs, then applies
// AuthorizationPolicy, then Cilium rules.http.
func (a *Authorizer) AuthorizeHTTP(r proxy.Request) (proxy.Decision, error) {
	st, m, v, err := a.lookup(r.Destination)
	if err != nil {
		return proxy.Decision{}, err
	}
	// A method in lower case would slip past rules that name it in upper
	// case (methods are case-sensitive, and policies are written in
	// upper case): refused before authorization, as Istio does.
	if err := mesh.CheckMethod(r.Method); err != nil {
		return proxy.Decision{Status: http.StatusBadRequest, Body: "bad request method", Reason: err.Error()}, nil
	}
	path, err := mesh.NormalizePath(r.Path, a.PathNormalization)
	if err != nil {
		return proxy.Decision{Status: http.StatusBadRequest, Body: "bad request path", Reason: err.Error()}, nil
	}
	allowed := proxy.Decision{Allow: true}
	if v != nil {
		hr := &http.Request{Method: r.Method, Host: r.Host, Header: r.Header, URL: &url.URL{Path: path, RawQuery: r.Query}}
		auth, status, err := v.Authenticate(hr)
		if status != http.StatusOK {
			body := "Jwt verification fails"
			var je *mesh.JWTError
			if errors.As(err, &je) {
				body = je.Reason
			}
			return proxy.Decision{Status: status, Body: body, Policy: auth.Policy.String(), Reason: "request authentication: " + body}, nil
		}
		req := meshRequest(r.Connection)
		req.HTTP, req.Host, req.Method, req.Path, req.Headers = true, r.Host, r.Method, path, r.Header
		if auth.Authenticated {
			req.Auth = &auth
		}
		if allowed = fromMesh(v.Authorize(req)); !allowed.Allow {
			return allowed, nil
		}
	}
	if hasPort(m.L7Ports, r.DestinationPort) {
		hreq := &policy.HTTPRequest{Method: r.Method, Path: path, Host: r.Host, Headers: r.Header}
		if d, ok := st.l4(r.Connection, hreq); !ok {
			return d, nil
		}
	}
	// The application gets the path that was authorized.
	allowed.Path = path
	return allowed, nil
}

// meshRequest describes a connection to the mesh engine. Principals are
// compared in Istio's form, without the spiffe:// scheme.
func meshRequest(c proxy.Connection) mesh.Request {
	src := c.Source.Addr().Unmap()
	req := mesh.Request{
		SourcePrincipal: strings.TrimPrefix(c.SourcePrincipal, "spiffe://"),
		SourceIP:        src,
		RemoteIP:        src,
		DestinationPort: c.DestinationPort,
		SNI:             c.SNI,
	}
	req.DestinationIP = addrLike(c.Destination.IPs, src)
	return req
}

// addrLike returns the first of ips in src's family: the proxy tells which
// workload a tunnel reached, not which of its addresses.
func addrLike(ips []netip.Addr, src netip.Addr) netip.Addr {
	for _, ip := range ips {
		if ip.Is4() == src.Is4() {
			return ip
		}
	}
	return netip.Addr{}
}

// fromMesh translates the engine's verdict. The reason is rendered only
// for denials, which are logged: an allowed request costs no formatting.
func fromMesh(d mesh.Decision) proxy.Decision {
	out := proxy.Decision{Allow: d.Allow && d.Err == nil}
	if d.Action != "" {
		out.Policy = "AuthorizationPolicy/" + d.Policy.String()
	}
	if !out.Allow {
		out.Reason = d.Reason()
	}
	return out
}

// l4 applies the L3/L4 verdict of NetworkPolicy and CiliumNetworkPolicy
// for the inner port, and with req the Cilium L7 rules. It reports false
// with the denial when the flow is denied.
func (st *state) l4(c proxy.Connection, req *policy.HTTPRequest) (proxy.Decision, bool) {
	repo := st.Repo
	if repo == nil {
		return proxy.Decision{}, true
	}
	src := c.Source.Addr().Unmap()
	dstAddr := addrLike(c.Destination.IPs, src)
	dst := st.side(dstAddr)
	if dst.Endpoint == nil {
		return proxy.Decision{Reason: "L3/L4: destination " + dstAddr.String() + " is not a known endpoint"}, false
	}
	v := repo.Decide(policy.Flow{Src: st.side(src), Dst: dst, Proto: policy.TCP, Port: c.DestinationPort, HTTP: req})
	if v.Allowed {
		return proxy.Decision{Allow: true}, true
	}
	dec := v.Ingress
	if !v.Egress.Allowed {
		dec = v.Egress
	}
	d := proxy.Decision{Reason: "L3/L4: " + dec.Explain()}
	if dec.Rule != nil {
		d.Policy = dec.Rule.Origin.Policy()
	}
	if dec.Reason == policy.L7Denied {
		d.Status, d.Body = http.StatusForbidden, CiliumDeniedBody
		d.Reason = "Cilium L7: " + dec.Explain()
		if len(dec.L7) > 0 {
			d.Policy = dec.L7[0].Origin.Policy()
		}
	}
	return d, false
}

// side finds the endpoint that owns addr, else treats addr as the world.
func (st *state) side(addr netip.Addr) policy.Side {
	if e := st.endpoints[addr]; e != nil {
		return policy.Side{Endpoint: e, Identity: e.Identity, Addr: addr}
	}
	return policy.Side{Identity: identity.Reserved(identity.World), Addr: addr}
}
