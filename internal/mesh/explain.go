package mesh

import (
	"fmt"
	"strconv"
	"strings"
)

// Trace is the step-by-step account of one authorization decision, for
// `rampart policy trace`. It is computed by the same rule evaluation as
// Authorize; Decision is Authorize's answer.
type Trace struct {
	Workload Workload
	Root     string
	HTTP     bool

	// Peer is the mTLS mode of the destination port. A plaintext
	// connection to a STRICT port never reaches authorization.
	Peer      PeerDecision
	Plaintext bool

	// RequestAuthn lists the RequestAuthentication policies that apply.
	RequestAuthn []PolicyRef

	// Policies are the AuthorizationPolicies that apply, in evaluation
	// order (CUSTOM, DENY, ALLOW, AUDIT, then dry-run ones); Skipped those
	// that do not, with the reason.
	Policies []PolicyTrace
	Skipped  []SkippedPolicy

	Decision Decision
}

// PolicyTrace is one applicable policy and how each rule fared.
type PolicyTrace struct {
	Policy PolicyRef
	Action Action
	DryRun bool
	Scope  string
	Rules  []RuleTrace
	// Matched is the first matching rule, or -1.
	Matched int
}

// RuleTrace says whether a rule matched and, if not, the first reason.
type RuleTrace struct {
	Index   int
	Matched bool
	Why     string
}

// SkippedPolicy is a policy that does not apply to the workload.
type SkippedPolicy struct {
	Policy PolicyRef
	Why    string
}

// Explain traces the decision for r.
func (e *Engine) Explain(w Workload, r Request) Trace { return e.Workload(w).Explain(r) }

// Explain traces the decision for r at this workload.
func (v *WorkloadView) Explain(r Request) Trace {
	r.prepare()
	t := Trace{
		Workload:  v.w,
		Root:      v.e.root,
		HTTP:      r.HTTP,
		Peer:      v.PeerMode(r.DestinationPort),
		Plaintext: r.SourcePrincipal == "",
		Decision:  v.authorize(&r),
	}
	seen := map[PolicyRef]bool{}
	for _, rule := range v.jwt.rules {
		if !seen[rule.ref] {
			seen[rule.ref] = true
			t.RequestAuthn = append(t.RequestAuthn, rule.ref)
		}
	}
	for _, group := range [][]*authzPolicy{v.custom, v.deny, v.allow, v.audit, v.dryRun} {
		for _, p := range group {
			t.Policies = append(t.Policies, p.explain(&r, v.e.root))
		}
	}
	for _, p := range v.e.authz {
		if ok, why := p.scope.applies(&v.w, v.e.root); !ok {
			t.Skipped = append(t.Skipped, SkippedPolicy{Policy: p.ref, Why: why})
		}
	}
	return t
}

func (p *authzPolicy) explain(r *Request, root string) PolicyTrace {
	pt := PolicyTrace{Policy: p.ref, Action: p.action, DryRun: p.dryRun, Scope: p.scope.describe(root), Matched: -1}
	tcp := !r.HTTP
	for i := range p.rules {
		ru := &p.rules[i]
		rt := RuleTrace{Index: i}
		switch {
		case tcp && ru.skipsTCP(p.action):
			rt.Why = "uses HTTP-only fields, so this ALLOW rule matches no TCP connection"
		case ru.matches(r, tcp):
			rt.Matched = true
			if tcp && ru.http {
				rt.Why = "HTTP-only fields ignored on a TCP connection"
			}
			if pt.Matched < 0 {
				pt.Matched = i
			}
		default:
			rt.Why = ru.why(r, tcp)
		}
		pt.Rules = append(pt.Rules, rt)
	}
	return pt
}

// why names the first part of a rule the request fails.
func (ru *rule) why(r *Request, ignoreHTTP bool) string {
	for i := range ru.when {
		if !ru.when[i].eval(r, ignoreHTTP) {
			return ru.when[i].why(r)
		}
	}
	if s := altsWhy("from", ru.from, r, ignoreHTTP); s != "" {
		return s
	}
	return altsWhy("to", ru.to, r, ignoreHTTP)
}

func altsWhy(name string, alts [][]field, r *Request, ignoreHTTP bool) string {
	if anyAll(alts, r, ignoreHTTP) {
		return ""
	}
	var parts []string
	for _, fs := range alts {
		for i := range fs {
			if !fs[i].eval(r, ignoreHTTP) {
				parts = append(parts, fs[i].why(r))
				break
			}
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "no " + name + " entry matches: " + strings.Join(parts, "; ")
}

// why explains a failed field: which list, its values, the request's value.
func (f *field) why(r *Request) string {
	got := f.describe(r)
	if len(f.pos) > 0 && !f.anyMatch(f.pos, r) {
		return fmt.Sprintf("%s %s does not match %s", f.posName, rawList(f.pos), got)
	}
	return fmt.Sprintf("%s %s matches %s", f.negName, rawList(f.neg), got)
}

func rawList(ps []pattern) string {
	vals := make([]string, len(ps))
	for i, p := range ps {
		vals[i] = strconv.Quote(p.raw)
	}
	return "[" + strings.Join(vals, ", ") + "]"
}

// describe renders the request attribute a field reads.
func (f *field) describe(r *Request) string {
	quote := func(what, v string) string {
		if v == "" {
			return what + " (none)"
		}
		return what + " " + strconv.Quote(v)
	}
	auth := r.Auth != nil && r.Auth.Authenticated
	switch f.kind {
	case attrSourcePrincipal:
		if r.SourcePrincipal == "" {
			return "source principal (none: plaintext)"
		}
		return quote("source principal", r.SourcePrincipal)
	case attrSourceNamespace:
		if r.srcNS == "" {
			return "source namespace (none: plaintext or no namespace in the principal)"
		}
		return quote("source namespace", r.srcNS)
	case attrServiceAccount:
		if r.srcSA == "" {
			return "source service account (none)"
		}
		return quote("source service account", r.srcNS+"/"+r.srcSA)
	case attrRequestPrincipal:
		if !auth {
			return "request principal (none: no valid JWT)"
		}
		return quote("request principal", r.Auth.Principal())
	case attrSourceIP:
		return "source IP " + r.SourceIP.String()
	case attrRemoteIP:
		return "remote IP " + r.RemoteIP.String()
	case attrDestIP:
		return "destination IP " + r.DestinationIP.String()
	case attrDestPort:
		return "destination port " + strconv.Itoa(int(r.DestinationPort))
	case attrSNI:
		return quote("SNI", r.SNI)
	case attrHost:
		return quote("host", r.Host)
	case attrMethod:
		return quote("method", r.Method)
	case attrPath:
		return quote("path", r.pathOnly)
	case attrHeader:
		v, ok := r.headerValue(f.header)
		if !ok {
			return "header " + f.header + " (absent)"
		}
		return quote("header "+f.header, v)
	case attrAudiences:
		if !auth {
			return "audiences (none: no valid JWT)"
		}
		return fmt.Sprintf("audiences %q", r.Auth.Audiences)
	case attrPresenter:
		if !auth {
			return "presenter (none: no valid JWT)"
		}
		return quote("presenter", r.Auth.Presenter)
	case attrClaim:
		name := "claim [" + strings.Join(f.claim, "][") + "]"
		if !auth {
			return name + " (none: no valid JWT)"
		}
		v := lookupClaim(r.Auth.Claims, f.claim)
		if v == nil {
			return name + " (absent)"
		}
		return fmt.Sprintf("%s %v", name, v)
	}
	return "?"
}

// String renders the trace as the text `rampart policy trace` prints.
func (t Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workload %s (root namespace %s)\n", t.Workload, t.Root)
	fmt.Fprintf(&b, "mTLS: %s\n", t.Peer)
	if t.Plaintext && t.Peer.Mode == ModeStrict {
		b.WriteString("  a plaintext connection to this port is refused before authorization\n")
	}
	if len(t.RequestAuthn) > 0 {
		names := make([]string, len(t.RequestAuthn))
		for i, p := range t.RequestAuthn {
			names[i] = p.String()
		}
		fmt.Fprintf(&b, "RequestAuthentication: %s\n", strings.Join(names, ", "))
	}
	kind := "HTTP request"
	if !t.HTTP {
		kind = "TCP connection"
	}
	if len(t.Policies) == 0 {
		fmt.Fprintf(&b, "no AuthorizationPolicy applies to this %s\n", kind)
	} else {
		fmt.Fprintf(&b, "AuthorizationPolicies for this %s:\n", kind)
	}
	for _, p := range t.Policies {
		dry := ""
		if p.DryRun {
			dry = " dry-run"
		}
		fmt.Fprintf(&b, "  %s%s %s (%s)", p.Action, dry, p.Policy, p.Scope)
		if len(p.Rules) == 0 {
			b.WriteString(": no rules, matches nothing\n")
			continue
		}
		b.WriteString("\n")
		for _, r := range p.Rules {
			status := "no match"
			if r.Matched {
				status = "match"
			}
			if r.Why != "" {
				fmt.Fprintf(&b, "    rule %d: %s: %s\n", r.Index, status, r.Why)
			} else {
				fmt.Fprintf(&b, "    rule %d: %s\n", r.Index, status)
			}
		}
	}
	for _, s := range t.Skipped {
		fmt.Fprintf(&b, "  not applied: %s (%s)\n", s.Policy, s.Why)
	}
	fmt.Fprintf(&b, "decision: %s\n", t.Decision.Reason())
	return b.String()
}
