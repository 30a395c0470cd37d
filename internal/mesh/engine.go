package mesh

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"github.com/rampartsec/rampart/internal/resource"
)

// Options configure an Engine. The zero value is Istio's defaults.
type Options struct {
	// RootNamespace is the mesh's root namespace; default "istio-system".
	RootNamespace string
	// Targets resolves Service and ServiceEntry targetRefs. Without it such
	// policies apply to no workload, with a warning.
	Targets TargetResolver
	// JWKS caches fetched keys. Pass the previous engine's cache when
	// rebuilding; default a new cache with default options.
	JWKS *JWKSCache
	// Now is the clock for token expiry; default time.Now.
	Now func() time.Time
}

// Engine evaluates a fixed set of Istio security policies. It is immutable
// and safe for concurrent use; rebuild it when policies change.
type Engine struct {
	root     string
	authz    []*authzPolicy
	peer     []*peerPolicy
	reqAuthn []*requestAuthn
	jwks     *JWKSCache
	now      func() time.Time
	warnings []string
}

// NewEngine compiles the AuthorizationPolicy, PeerAuthentication and
// RequestAuthentication objects among objs (other kinds are ignored).
// Like decoding, it is all-or-nothing: any error returns no engine and a
// resource.ErrorList naming each object, line and field, so a proxy keeps
// enforcing its previous engine rather than a partial one.
func NewEngine(objs []*resource.Object, opts Options) (*Engine, error) {
	e := &Engine{root: cmp.Or(opts.RootNamespace, DefaultRootNamespace), jwks: opts.JWKS, now: opts.Now}
	if e.jwks == nil {
		e.jwks = NewJWKSCache(JWKSOptions{Now: opts.Now})
	}
	if e.now == nil {
		e.now = time.Now
	}
	var errs resource.ErrorList
	for _, o := range objs {
		var (
			warns []string
			perr  resource.ErrorList
		)
		switch obj := o.Obj.(type) {
		case *resource.AuthorizationPolicy:
			var p *authzPolicy
			if p, warns, perr = compileAuthz(o, obj, opts.Targets); p != nil {
				e.authz = append(e.authz, p)
			}
		case *resource.PeerAuthentication:
			var p *peerPolicy
			if p, warns, perr = compilePeer(o, obj, e.root); p != nil {
				e.peer = append(e.peer, p)
			}
		case *resource.RequestAuthentication:
			var p *requestAuthn
			if p, warns, perr = compileRequestAuthn(o, obj, opts.Targets); p != nil {
				e.reqAuthn = append(e.reqAuthn, p)
			}
		}
		errs = append(errs, perr...)
		e.warnings = append(e.warnings, warns...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	// A fixed order makes decisions and traces independent of input order:
	// the first matching policy of an action is the one reported.
	byRef := func(a, b PolicyRef) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	slices.SortFunc(e.authz, func(a, b *authzPolicy) int { return byRef(a.ref, b.ref) })
	slices.SortFunc(e.reqAuthn, func(a, b *requestAuthn) int { return byRef(a.ref, b.ref) })
	slices.SortFunc(e.peer, older)
	return e, nil
}

// RootNamespace returns the mesh's root namespace.
func (e *Engine) RootNamespace() string { return e.root }

// Warnings lists what the engine accepted but the user should know:
// CUSTOM policies (denied), unresolved targetRefs (inert), ignored
// root-namespace selectors.
func (e *Engine) Warnings() []string { return e.warnings }

// WorkloadView holds the policies that apply to one workload. Build it
// once per workload and engine; its methods do not allocate on the paths
// that allow a request.
type WorkloadView struct {
	e         *Engine
	w         Workload
	custom    []*authzPolicy
	deny      []*authzPolicy
	allow     []*authzPolicy
	audit     []*authzPolicy
	dryRun    []*authzPolicy
	allowRefs []PolicyRef
	jwt       jwtSet
	peer      peerResult
}

// Workload selects the policies that apply to w.
func (e *Engine) Workload(w Workload) *WorkloadView {
	v := &WorkloadView{e: e, w: w}
	for _, p := range e.authz {
		if ok, _ := p.scope.applies(&w, e.root); !ok {
			continue
		}
		if p.dryRun {
			v.dryRun = append(v.dryRun, p)
			continue
		}
		switch p.action {
		case ActionCustom:
			v.custom = append(v.custom, p)
		case ActionDeny:
			v.deny = append(v.deny, p)
		case ActionAllow:
			v.allow = append(v.allow, p)
			v.allowRefs = append(v.allowRefs, p.ref)
		case ActionAudit:
			v.audit = append(v.audit, p)
		}
	}
	var ras []*requestAuthn
	for _, p := range e.reqAuthn {
		if ok, _ := p.scope.applies(&w, e.root); ok {
			ras = append(ras, p)
		}
	}
	v.jwt = newJWTSet(ras)
	v.peer = composePeer(e.peer, &w, e.root)
	return v
}

// Authorize decides a connection or request with Istio's order: a
// matching CUSTOM policy denies (Rampart has no extension providers, see
// ErrCustomAction); then a matching DENY policy denies; then, if no ALLOW
// policy applies the request is allowed, else it is allowed only when one
// matches. AUDIT policies mark the decision without changing it.
//
// For a TCP connection (r.HTTP false) Istio's handling of HTTP-only
// attributes (hosts, methods, paths, request principals, headers, JWT
// claims) applies: an ALLOW rule using one never matches; DENY, AUDIT and
// CUSTOM rules ignore them and so match more.
func (v *WorkloadView) Authorize(r Request) Decision {
	r.prepare()
	return v.authorize(&r)
}

// Authenticate validates the JWTs of an HTTP request against the
// RequestAuthentication rules that apply. It returns status 200 with the
// result (Authenticated false when the request carried no token), or 401
// with a *JWTError when a token is invalid: the proxy must then answer 401
// with err's Reason as the body, as Istio does.
func (v *WorkloadView) Authenticate(r *http.Request) (AuthResult, int, error) {
	if len(v.jwt.rules) == 0 {
		return AuthResult{}, http.StatusOK, nil
	}
	return v.jwt.authenticate(r, v.e.jwks, v.e.now())
}

// PeerMode returns the effective mTLS mode of the workload's port (the
// port the workload listens on, as portLevelMtls uses).
func (v *WorkloadView) PeerMode(port uint16) PeerDecision { return v.peer.mode(port) }

// Authorize is Workload(w).Authorize(r), for callers that do not keep
// views.
func (e *Engine) Authorize(w Workload, r Request) Decision { return e.Workload(w).Authorize(r) }

// Authenticate is Workload(w).Authenticate(r).
func (e *Engine) Authenticate(w Workload, r *http.Request) (AuthResult, int, error) {
	return e.Workload(w).Authenticate(r)
}

// PeerMode is Workload(w).PeerMode(port).
func (e *Engine) PeerMode(w Workload, port uint16) PeerDecision { return e.Workload(w).PeerMode(port) }

// NeedsHTTP reports whether deciding for this workload needs the HTTP
// request: a RequestAuthentication applies, or an applicable authorization
// policy has a rule with an HTTP-only attribute. The node proxy then
// parses the connection as HTTP and asks per request; otherwise one
// decision per connection is exact, and cheaper.
func (v *WorkloadView) NeedsHTTP() bool {
	if len(v.jwt.rules) > 0 {
		return true
	}
	for _, ps := range [][]*authzPolicy{v.custom, v.deny, v.allow, v.audit} {
		for _, p := range ps {
			for i := range p.rules {
				if p.rules[i].http {
					return true
				}
			}
		}
	}
	return false
}
