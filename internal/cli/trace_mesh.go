package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// The layers of a mesh trace, in the order the node enforces them. They
// are also the values of layers[].layer in -o json.
const (
	layerL3L4      = "L3/L4"
	layerPeerAuthn = "PeerAuthentication"
	layerReqAuthn  = "RequestAuthentication"
	layerAuthz     = "AuthorizationPolicy"
	layerCiliumL7  = "CiliumL7"
)

// Layer verdicts. A skipped layer had nothing to check; an unverified one
// could not finish offline (a JWT whose keys sit behind a jwksUri) and the
// layers after it assume the best case, which the trace's caveat states.
const (
	verdictAllowed    = "allowed"
	verdictDenied     = "denied"
	verdictSkipped    = "skipped"
	verdictUnverified = "unverified"
)

// hbonePort is the port mesh tunnels arrive on, proxy.HBONEPort; a test
// keeps the two equal without linking the proxy into the CLI.
const hbonePort = 15008

// What a client sees when a layer denies.
const (
	answerRBAC         = "403 RBAC: access denied"
	answerCiliumDenied = "403 Access denied"
	answerProxyCloses  = "the proxy refuses the connection"
	answerKernelDrops  = "the kernel drops the connection"
	answerTunnelClosed = "the tunnel is dropped by the kernel or refused by the proxy"
)

// traceLayer is one layer's verdict: layers[] in -o json.
type traceLayer struct {
	Layer   string `json:"layer"`
	Verdict string `json:"verdict"`
	// Policy names the deciding policy as Kind/namespace/name, several
	// separated by ", " (the ALLOW policies none of which matched), or "".
	Policy  string   `json:"policy"`
	Reason  string   `json:"reason"`
	Details []string `json:"details,omitempty"`
}

// meshTrace is the outcome of a flow through the layers.
type meshTrace struct {
	Layers    []traceLayer
	Allowed   bool
	DecidedBy int    // index of the deciding layer
	Answer    string // what the client gets when denied
	Caveat    string // the condition an allowed verdict rests on
	Notes     []string
	Principal string // the source's mTLS principal; "" for plaintext
	Plaintext string // why the source is plaintext
	jwt       *traceJWT
}

// meshTracer holds what the layers need while they are traced.
type meshTracer struct {
	repo  *policy.Repository
	eng   *mesh.Engine
	view  *mesh.WorkloadView
	objs  map[string]*resource.Object // by Ref, for file:line
	flow  policy.Flow                 // HTTP is nil: the L3/L4 flow
	req   *traceRequest               // nil when no request was given
	path  string                      // req's normalized path, without query
	query string
	jwt   *traceJWT
	auth  *mesh.AuthResult
	mt    meshTrace
	// httpPort is set when the destination names the port as HTTP
	// (http, http-*, http2, grpc), which makes the node parse requests.
	httpPort bool
}

// runMeshTrace traces a flow whose destination the mesh may protect.
func runMeshTrace(s Streams, o traceOpts, mo meshOpts, objs []*resource.Object, repo *policy.Repository, flow policy.Flow, req *traceRequest) error {
	eng, err := mesh.NewEngine(objs, mesh.Options{Targets: serviceTargets(objs), JWKS: offlineJWKS()})
	if err != nil {
		var list resource.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(s.Err, e)
			}
			fmt.Fprintf(s.Err, "%d error(s); nothing was used\n", len(list))
			return failed
		}
		return &ExitError{Code: 1, Err: err}
	}
	tr := &meshTracer{repo: repo, eng: eng, objs: map[string]*resource.Object{}, flow: flow, req: req, jwt: mo.jwt}
	tr.mt.jwt = mo.jwt
	for _, o := range objs {
		tr.objs[o.Ref()] = o
	}
	if req != nil {
		if mo.jwt != nil {
			if req.Header.Get("Authorization") != "" {
				return UsageError("%s: --header already sets Authorization; give the token once", mo.jwt.flag)
			}
			req.Header.Set("Authorization", "Bearer "+mo.jwt.raw)
		}
		if err := mesh.CheckMethod(req.Method); err != nil {
			return UsageError("--method %q: the node rejects it with 400: %v", req.Method, err)
		}
		// The node matches and forwards the normalized path (Istio's
		// default, BASE, unless its --path-normalization says
		// otherwise); so does the trace.
		p, err := mesh.NormalizePath(req.Path, mo.pathNorm)
		if err != nil {
			return UsageError("--path %q: the node rejects it with 400: %v", req.Path, err)
		}
		tr.path, tr.query, _ = strings.Cut(p, "?")
	}
	tr.source(mo, objs)
	tr.run()
	for _, w := range eng.Warnings() {
		tr.mt.Notes = append(tr.mt.Notes, "warning: "+w)
	}

	// The egress and ingress lines show Decide's answer with the request,
	// as without the mesh, on the path the node matches.
	full := flow
	if req != nil {
		full.HTTP = tr.ciliumRequest()
	}
	v := repo.Decide(full)
	if o.output == "json" {
		return writeTraceJSON(s.Out, meshTraceJSON(full, v, &tr.mt))
	}
	writeMeshTable(s.Out, full, v, req, &tr.mt)
	return nil
}

// serviceTargets resolves Service targetRefs to the selectors of the
// Services in the input. ServiceEntry is not among the kinds trace reads,
// so such references stay unresolved (and the engine warns).
func serviceTargets(objs []*resource.Object) mesh.TargetResolver {
	sel := map[string]map[string]string{}
	for _, o := range objs {
		if svc, ok := o.Obj.(*corev1.Service); ok {
			sel[o.Namespace+"/"+o.Name] = svc.Spec.Selector
		}
	}
	return mesh.TargetResolverFunc(func(ref mesh.TargetRef) (map[string]string, bool) {
		if ref.Kind != "Service" {
			return nil, false
		}
		s, ok := sel[ref.Namespace+"/"+ref.Name]
		return s, ok
	})
}

// source decides the source's principal: a workload of the mesh speaks
// mTLS as <trust domain>/ns/<ns>/sa/<sa>, unless --plaintext says it is
// outside the mesh; anything that is not a workload is outside.
func (tr *meshTracer) source(mo meshOpts, objs []*resource.Object) {
	src := tr.flow.Src
	switch {
	case mo.plaintext:
		tr.mt.Plaintext = "--plaintext: the source is not in the mesh"
	case src.Endpoint == nil:
		tr.mt.Plaintext = fmt.Sprintf("%s is not a workload, so not in the mesh", src)
	default:
		tr.mt.Principal = fmt.Sprintf("%s/ns/%s/sa/%s", mo.trustDomain, src.Endpoint.Namespace, serviceAccountOf(src.Endpoint))
		// When the input puts namespaces in the mesh by label, one without
		// it may well be outside: say so rather than guess.
		if labelsMesh(objs) && !inMeshNamespace(tr.repo, src.Endpoint.Namespace) {
			tr.mt.Notes = append(tr.mt.Notes, fmt.Sprintf("namespace %s is not labelled %s=enabled: if %s is outside the mesh it connects in plaintext; trace that with --plaintext",
				src.Endpoint.Namespace, posture.MeshLabel, src))
		}
	}
}

// labelsMesh reports whether some namespace of the input is labelled into
// the mesh.
func labelsMesh(objs []*resource.Object) bool {
	for _, o := range objs {
		if ns, ok := o.Obj.(*corev1.Namespace); ok && ns.Labels[posture.MeshLabel] == "enabled" {
			return true
		}
	}
	return false
}

// add appends a layer and reports whether the trace goes on.
func (tr *meshTracer) add(l traceLayer, answer string) bool {
	tr.mt.Layers = append(tr.mt.Layers, l)
	if l.Verdict == verdictDenied {
		tr.mt.Allowed, tr.mt.DecidedBy, tr.mt.Answer = false, len(tr.mt.Layers)-1, answer
		return false
	}
	if l.Verdict != verdictSkipped {
		tr.mt.DecidedBy = len(tr.mt.Layers) - 1
	}
	return true
}

// run traces the layers in the node's order and stops at the first deny.
func (tr *meshTracer) run() {
	tr.mt.Allowed = true
	f := tr.flow
	notMesh := ""
	switch {
	case f.Dst.Endpoint == nil:
		notMesh = fmt.Sprintf("%s is not a workload: no mesh proxy serves it, so only L3/L4 applies", f.Dst)
	case f.Src.Endpoint != nil && f.Src.Endpoint == f.Dst.Endpoint:
		notMesh = "traffic from a pod to itself never leaves it: the mesh proxy does not see it, so only L3/L4 applies"
	case f.Proto != policy.TCP:
		notMesh = fmt.Sprintf("the mesh proxy captures TCP only: no mesh layer applies to %s", f.Proto)
	}
	if notMesh != "" {
		tr.mt.Notes = append(tr.mt.Notes, notMesh)
	}
	l4 := tr.repo.Decide(f)
	if !tr.add(tr.l3l4(l4, notMesh == "")) || notMesh != "" {
		return
	}
	dst := f.Dst.Endpoint
	tr.view = tr.eng.Workload(mesh.Workload{Namespace: dst.Namespace, Labels: dst.Labels, ServiceAccount: serviceAccountOf(dst)})
	if !tr.add(tr.peerAuthn()) {
		return
	}

	// The node parses HTTP on a port when mesh policy looks at requests or
	// Cilium rules.http filter it, and then decides layers 3 to 5 per
	// request; elsewhere it decides once per connection.
	l7 := len(l4.Egress.L7) > 0 || len(l4.Ingress.L7) > 0
	for name, np := range dst.NamedPorts {
		if np.Port == f.Port && np.Proto == policy.TCP && mesh.IsHTTPPortName(name) {
			tr.httpPort = true
		}
	}
	perRequest := tr.view.NeedsHTTP() || l7 || tr.httpPort
	switch {
	case tr.req != nil && !perRequest:
		tr.mt.Notes = append(tr.mt.Notes, fmt.Sprintf("no policy looks at HTTP requests on port %d: the proxy decides once per connection, and the request's method, path, headers and token change nothing", f.Port))
	case tr.req == nil && perRequest:
		tr.mt.Caveat = "for the connection only (each HTTP request on it is decided by the skipped layers: give --method and --path to trace one)"
	}
	asHTTP := tr.req != nil && perRequest
	if !tr.add(tr.requestAuthn(asHTTP)) {
		return
	}
	if !tr.add(tr.authorization(asHTTP)) {
		return
	}
	tr.add(tr.ciliumL7(asHTTP, l7), answerCiliumDenied)
}

// perRequest is the reason of a layer the node decides per HTTP request
// when no request was given.
func (tr *meshTracer) perRequest(why string) string {
	return fmt.Sprintf("decided per HTTP request (%s): give --method and --path to trace one", why)
}

// l3l4 is the kernel's verdict, which the proxy repeats for the inner port
// of a tunnel.
func (tr *meshTracer) l3l4(v policy.Verdict, meshed bool) (traceLayer, string) {
	f := tr.flow
	l := traceLayer{Layer: layerL3L4, Verdict: verdictWord(v.Allowed)}
	var reasons []string
	for _, s := range []struct {
		dir  string
		side policy.Side
		d    policy.Decision
	}{{"egress", f.Src, v.Egress}, {"ingress", f.Dst, v.Ingress}} {
		if !v.Allowed && s.d.Allowed {
			continue
		}
		reasons = append(reasons, fmt.Sprintf("%s of %s: %s", s.dir, s.side, s.d.Explain()))
		if p := decisionPolicy(s.d); p != "" && (l.Policy == "" || v.Allowed) {
			l.Policy = p
		}
		if r := s.d.Rule; r != nil && r.Origin.File != "" {
			l.Details = append(l.Details, fmt.Sprintf("%s rule at %s:%d", s.dir, r.Origin.File, r.Origin.Line))
		}
	}
	l.Reason = strings.Join(reasons, "; ")
	answer := answerKernelDrops
	switch {
	case meshed && tr.mt.Principal != "":
		l.Details = append(l.Details, fmt.Sprintf("mTLS: the kernel sees the tunnel to port %d (HBONE); the proxy enforces this same verdict for port %d inside it", hbonePort, f.Port))
		answer = answerTunnelClosed
	case meshed:
		l.Details = append(l.Details, fmt.Sprintf("plaintext: the kernel sees port %d itself", f.Port))
	}
	return l, answer
}

// decisionPolicy names the policy behind one side's decision.
func decisionPolicy(d policy.Decision) string {
	if d.Rule != nil {
		return d.Rule.Origin.Policy()
	}
	if d.Reason == policy.DefaultDeny {
		var names []string
		for _, s := range d.Selecting {
			if p := s.Origin.Policy(); !slices.Contains(names, p) {
				names = append(names, p)
			}
		}
		return strings.Join(names, ", ")
	}
	return ""
}

// peerAuthn applies the destination port's mTLS mode: mTLS satisfies every
// mode; plaintext is refused under STRICT.
func (tr *meshTracer) peerAuthn() (traceLayer, string) {
	port := tr.flow.Port
	pd := tr.view.PeerMode(port)
	l := traceLayer{Layer: layerPeerAuthn, Verdict: verdictAllowed}
	if pd.Level != mesh.LevelDefault {
		l.Policy = "PeerAuthentication/" + pd.Policy.String()
		path := "spec.mtls.mode"
		if pd.Level == mesh.LevelPort {
			path = fmt.Sprintf("spec.portLevelMtls.%d", port)
		}
		l.Details = tr.at("PeerAuthentication/"+pd.Policy.String(), path)
	}
	switch {
	case tr.mt.Principal != "":
		l.Reason = fmt.Sprintf("%s: mTLS from %s is accepted", pd, tr.mt.Principal)
	case pd.Mode == mesh.ModeStrict:
		l.Verdict = verdictDenied
		l.Reason = fmt.Sprintf("plaintext refused by PeerAuthentication %s (STRICT)", pd.Policy)
		l.Details = append([]string{fmt.Sprintf("port %d: %s; %s", port, pd, tr.mt.Plaintext)}, l.Details...)
	default:
		l.Reason = fmt.Sprintf("%s: plaintext is accepted, without a source principal (%s)", pd, tr.mt.Plaintext)
	}
	return l, answerProxyCloses
}

// requestAuthn validates the request's JWTs as the node does, offline.
func (tr *meshTracer) requestAuthn(asHTTP bool) (traceLayer, string) {
	l := traceLayer{Layer: layerReqAuthn, Verdict: verdictSkipped}
	dst := tr.flow.Dst
	refs := tr.view.Explain(mesh.Request{DestinationPort: tr.flow.Port}).RequestAuthn
	names := make([]string, len(refs))
	for i, r := range refs {
		names[i] = "RequestAuthentication/" + r.String()
	}
	switch {
	case len(refs) == 0:
		l.Reason = fmt.Sprintf("no RequestAuthentication applies to %s", dst)
		if tr.jwt != nil {
			l.Reason += ": the token is not checked and gives no request principal"
		}
		return l, ""
	case !asHTTP:
		l.Policy = strings.Join(names, ", ")
		l.Reason = tr.perRequest("RequestAuthentication applies")
		return l, ""
	}
	l.Policy = strings.Join(names, ", ")
	hr := &http.Request{Method: tr.req.Method, Host: tr.req.Host, Header: tr.req.Header, URL: &url.URL{Path: tr.path, RawQuery: tr.query}}
	auth, status, err := tr.view.Authenticate(hr)
	var je *mesh.JWTError
	switch {
	case status == http.StatusOK && auth.Authenticated:
		l.Verdict, l.Policy = verdictAllowed, "RequestAuthentication/"+auth.Policy.String()
		l.Reason = "valid JWT: request principal " + auth.Principal()
		if len(auth.Audiences) > 0 {
			l.Details = append(l.Details, "audiences: "+strings.Join(auth.Audiences, ", "))
		}
		l.Details = append(l.Details, tr.at(l.Policy, "spec.jwtRules")...)
		tr.auth = &auth
	case status == http.StatusOK && tr.jwt != nil:
		l.Verdict = verdictAllowed
		l.Reason = "no rule reads a token from \"Authorization: Bearer\": the request is accepted without a request principal (a rule's fromHeaders, fromParams or fromCookies say where it reads; pass the token there with --header)"
	case status == http.StatusOK:
		l.Verdict = verdictAllowed
		l.Reason = "no JWT in the request: it is accepted without a request principal (an AuthorizationPolicy on requestPrincipals can require one)"
	case errors.Is(err, errOffline) && errors.As(err, &je):
		where := "a URL"
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			where = ue.URL
		}
		l.Verdict = verdictUnverified
		l.Reason = fmt.Sprintf("the keys of issuer %s are fetched from %s, and trace is offline: the token's form, issuer, times and audiences pass, its signature is not checked", je.Issuer, where)
		if tr.jwt != nil && tr.jwt.unverified().Issuer == je.Issuer {
			tr.auth = tr.jwt.unverified()
			l.Details = append(l.Details, "the next layers assume it verifies: request principal "+tr.auth.Principal())
		} else {
			l.Details = append(l.Details, "the next layers see no request principal")
		}
		tr.mt.Caveat = "if the JWT's signature verifies (its keys were not fetched)"
	default:
		reason := "Jwt verification fails"
		if errors.As(err, &je) {
			reason = je.Reason
			if je.Issuer != "" {
				l.Details = append(l.Details, "issuer "+je.Issuer)
			}
		}
		l.Verdict = verdictDenied
		l.Reason = fmt.Sprintf("invalid JWT: %d %s", status, reason)
		return l, fmt.Sprintf("%d %s", status, reason)
	}
	return l, ""
}

// authorization applies AuthorizationPolicy to the request, or to the
// connection when the node decides per connection.
func (tr *meshTracer) authorization(asHTTP bool) (traceLayer, string) {
	l := traceLayer{Layer: layerAuthz}
	f := tr.flow
	if tr.req == nil && tr.view.NeedsHTTP() {
		l.Verdict, l.Reason = verdictSkipped, tr.perRequest("an AuthorizationPolicy or RequestAuthentication looks at requests")
		return l, ""
	}
	if tr.req == nil && tr.httpPort {
		l.Verdict, l.Reason = verdictSkipped, tr.perRequest("the port is named as HTTP")
		return l, ""
	}
	r := mesh.Request{HTTP: asHTTP, SourcePrincipal: tr.mt.Principal, SourceIP: f.Src.Addr, DestinationIP: f.Dst.Addr, DestinationPort: f.Port}
	if asHTTP {
		r.Host, r.Method, r.Path, r.Headers, r.Auth = tr.req.Host, tr.req.Method, tr.path, tr.req.Header, tr.auth
	}
	t := tr.view.Explain(r)
	d := t.Decision
	l.Verdict, l.Reason = verdictWord(d.Allow && d.Err == nil), d.Reason()
	switch {
	case d.Action != "":
		l.Policy = "AuthorizationPolicy/" + d.Policy.String()
	case !d.Allow:
		names := make([]string, len(d.AllowPolicies))
		for i, p := range d.AllowPolicies {
			names[i] = "AuthorizationPolicy/" + p.String()
		}
		l.Policy = strings.Join(names, ", ")
	}
	if d.Action != "" {
		l.Details = tr.at(l.Policy, fmt.Sprintf("spec.rules[%d]", d.Rule))
	}
	l.Details = append(l.Details, authzDetails(t)...)
	if asHTTP {
		return l, answerRBAC
	}
	return l, answerProxyCloses
}

// authzDetails lists the policies that apply and how each rule fared, as
// mesh.Trace.String does, without the lines the other layers print.
func authzDetails(t mesh.Trace) []string {
	kind := "HTTP request"
	if !t.HTTP {
		kind = "TCP connection"
	}
	var out []string
	if len(t.Policies) == 0 {
		out = append(out, "no AuthorizationPolicy applies to this "+kind)
	}
	for _, p := range t.Policies {
		dry := ""
		if p.DryRun {
			dry = " dry-run"
		}
		head := fmt.Sprintf("%s%s %s (%s)", p.Action, dry, p.Policy, p.Scope)
		if len(p.Rules) == 0 {
			out = append(out, head+": no rules, matches nothing")
			continue
		}
		out = append(out, head)
		for _, r := range p.Rules {
			line := fmt.Sprintf("  rule %d: no match", r.Index)
			if r.Matched {
				line = fmt.Sprintf("  rule %d: match", r.Index)
			}
			if r.Why != "" {
				line += ": " + r.Why
			}
			out = append(out, line)
		}
	}
	for _, s := range t.Skipped {
		out = append(out, fmt.Sprintf("not applied: %s (%s)", s.Policy, s.Why))
	}
	return out
}

// ciliumRequest is the request Cilium rules.http see on the node: the
// normalized path without its query.
func (tr *meshTracer) ciliumRequest() *policy.HTTPRequest {
	return &policy.HTTPRequest{Method: tr.req.Method, Path: tr.path, Host: tr.req.Host, Headers: tr.req.Header}
}

// ciliumL7 applies the rules.http of the allows that opened the port.
func (tr *meshTracer) ciliumL7(asHTTP, l7 bool) traceLayer {
	l := traceLayer{Layer: layerCiliumL7, Verdict: verdictSkipped}
	f := tr.flow
	switch {
	case !l7:
		l.Reason = fmt.Sprintf("no Cilium rules.http applies to port %d", f.Port)
		return l
	case !asHTTP:
		l.Reason = tr.perRequest("Cilium rules.http filter the port")
		return l
	}
	f.HTTP = tr.ciliumRequest()
	v := tr.repo.Decide(f)
	for _, s := range []struct {
		dir  string
		side policy.Side
		d    policy.Decision
	}{{"egress", f.Src, v.Egress}, {"ingress", f.Dst, v.Ingress}} {
		switch {
		case s.d.Reason == policy.L7Denied:
			var names []string
			for _, r := range s.d.L7 {
				if p := r.Origin.Policy(); !slices.Contains(names, p) {
					names = append(names, p)
				}
			}
			return traceLayer{Layer: layerCiliumL7, Verdict: verdictDenied, Policy: strings.Join(names, ", "),
				Reason: fmt.Sprintf("%s of %s: %s", s.dir, s.side, s.d.Explain())}
		case s.d.HTTPRule != nil:
			l.Verdict, l.Policy = verdictAllowed, s.d.Rule.Origin.Policy()
			l.Reason = fmt.Sprintf("%s of %s: %s", s.dir, s.side, s.d.Explain())
		}
	}
	return l
}

// at locates a policy's field in the input, as "at FILE:LINE".
func (tr *meshTracer) at(ref, path string) []string {
	o := tr.objs[ref]
	if o == nil || o.Source.File == "" {
		return nil
	}
	return []string{fmt.Sprintf("at %s:%d", o.Source.File, o.Line(path))}
}
