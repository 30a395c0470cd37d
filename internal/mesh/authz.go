package mesh

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// Action is an AuthorizationPolicy action.
type Action string

// The actions, in the order Istio evaluates them (AUDIT never decides).
const (
	ActionCustom Action = "CUSTOM"
	ActionDeny   Action = "DENY"
	ActionAllow  Action = "ALLOW"
	ActionAudit  Action = "AUDIT"
)

// DryRunAnnotation marks a policy to be evaluated without being enforced.
// Rampart leaves such policies out of decisions and shows what they would
// have done in traces.
const DryRunAnnotation = "istio.io/dry-run"

// authzPolicy is a compiled AuthorizationPolicy.
type authzPolicy struct {
	ref      PolicyRef
	action   Action
	provider string
	dryRun   bool
	scope    scope
	rules    []rule
}

// rule is a compiled rule: one of from (if any) AND one of to (if any) AND
// every when. An empty rule matches everything.
type rule struct {
	from [][]field
	to   [][]field
	when []field
	http bool // some field is HTTP-only
}

// compileAuthz compiles an AuthorizationPolicy object. Input that passed
// resource validation compiles, except for the few things Istio's schema
// rejects and the decoder does not check yet ("Strict build" in
// docs/mesh-semantics.md); the other errors guard against objects built by
// hand.
func compileAuthz(o *resource.Object, ap *resource.AuthorizationPolicy, res TargetResolver) (*authzPolicy, []string, resource.ErrorList) {
	c := &compiler{o: o}
	s := &ap.Spec
	p := &authzPolicy{ref: PolicyRef{Namespace: o.Namespace, Name: o.Name}}
	switch s.Action {
	case "", "ALLOW":
		p.action = ActionAllow
	case "DENY":
		p.action = ActionDeny
	case "AUDIT":
		p.action = ActionAudit
	case "CUSTOM":
		p.action = ActionCustom
		if s.Provider != nil {
			p.provider = s.Provider.Name
		}
	default:
		c.fail("spec.action", "unknown action %q (want ALLOW, DENY, AUDIT or CUSTOM)", s.Action)
	}
	if v, ok := ap.Annotations[DryRunAnnotation]; ok {
		// Istio ignores an unparsable value and enforces the policy.
		p.dryRun, _ = strconv.ParseBool(v)
	}
	sc, warns, errs := buildScope(o, s.Selector, s.TargetRef, s.TargetRefs, res)
	p.scope = sc
	c.errs = append(c.errs, errs...)
	if p.action == ActionCustom {
		warns = append(warns, fmt.Sprintf("%s: %v; requests matching its rules are denied", o.Ref(), ErrCustomAction))
	}
	for i, r := range s.Rules {
		p.rules = append(p.rules, c.rule(r, fmt.Sprintf("spec.rules[%d]", i)))
	}
	if len(c.errs) > 0 {
		return nil, nil, c.errs
	}
	return p, warns, nil
}

// fieldSpec is one pair of a from or to clause: the field and its not-
// counterpart, their names for errors, and their values.
type fieldSpec struct {
	kind          attr
	name, notName string
	vals, notVals []string
}

// fields compiles the pairs of one clause at prefix, leaving out the empty
// ones.
func (c *compiler) fields(prefix string, specs ...fieldSpec) []field {
	var fs []field
	for _, sp := range specs {
		if fl, ok := c.newField(sp.kind, prefix+"."+sp.name, prefix+"."+sp.notName, sp.vals, sp.notVals); ok {
			fs = append(fs, fl)
		}
	}
	return fs
}

func (c *compiler) rule(r resource.AuthzRule, path string) rule {
	var out rule
	for i, f := range r.From {
		var fs []field
		if src := f.Source; src != nil {
			fs = c.fields(fmt.Sprintf("%s.from[%d].source", path, i),
				fieldSpec{attrSourcePrincipal, "principals", "notPrincipals", src.Principals, src.NotPrincipals},
				fieldSpec{attrRequestPrincipal, "requestPrincipals", "notRequestPrincipals", src.RequestPrincipals, src.NotRequestPrincipals},
				fieldSpec{attrSourceNamespace, "namespaces", "notNamespaces", src.Namespaces, src.NotNamespaces},
				fieldSpec{attrServiceAccount, "serviceAccounts", "notServiceAccounts", src.ServiceAccounts, src.NotServiceAccounts},
				fieldSpec{attrSourceIP, "ipBlocks", "notIpBlocks", src.IPBlocks, src.NotIPBlocks},
				fieldSpec{attrRemoteIP, "remoteIpBlocks", "notRemoteIpBlocks", src.RemoteIPBlocks, src.NotRemoteIPBlocks},
			)
		}
		out.from = append(out.from, fs)
	}
	for i, t := range r.To {
		var fs []field
		if op := t.Operation; op != nil {
			fs = c.fields(fmt.Sprintf("%s.to[%d].operation", path, i),
				fieldSpec{attrHost, "hosts", "notHosts", op.Hosts, op.NotHosts},
				fieldSpec{attrDestPort, "ports", "notPorts", op.Ports, op.NotPorts},
				fieldSpec{attrMethod, "methods", "notMethods", op.Methods, op.NotMethods},
				fieldSpec{attrPath, "paths", "notPaths", op.Paths, op.NotPaths},
			)
		}
		out.to = append(out.to, fs)
	}
	for i, w := range r.When {
		if fl, ok := c.condition(w, fmt.Sprintf("%s.when[%d]", path, i)); ok {
			out.when = append(out.when, fl)
		}
	}
	for _, fs := range append(append(append([][]field{}, out.from...), out.to...), out.when) {
		for _, f := range fs {
			if f.kind.httpOnly() {
				out.http = true
			}
		}
	}
	return out
}

// skipsTCP reports whether the rule can never match a TCP connection under
// action a: Istio drops ALLOW rules that use HTTP-only attributes from the
// TCP filter chain ("skipped rule ... on TCP filter chain"), so they allow
// nothing there. DENY, AUDIT and CUSTOM rules instead ignore those
// attributes and so match more broadly.
func (ru *rule) skipsTCP(a Action) bool { return a == ActionAllow && ru.http }

// matches evaluates the rule. ignoreHTTP is set for TCP connections.
func (ru *rule) matches(r *Request, ignoreHTTP bool) bool {
	for i := range ru.when {
		if !ru.when[i].eval(r, ignoreHTTP) {
			return false
		}
	}
	return anyAll(ru.from, r, ignoreHTTP) && anyAll(ru.to, r, ignoreHTTP)
}

// anyAll is true when alts is empty or one alternative passes every field.
func anyAll(alts [][]field, r *Request, ignoreHTTP bool) bool {
	if len(alts) == 0 {
		return true
	}
	for _, fs := range alts {
		ok := true
		for i := range fs {
			if !fs[i].eval(r, ignoreHTTP) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// match returns the index of the first rule that matches, or -1. A policy
// without rules matches nothing, whatever its action (Istio generates a
// "match never" policy for it), which for ALLOW means "allow nothing".
func (p *authzPolicy) match(r *Request) int {
	tcp := !r.HTTP
	for i := range p.rules {
		ru := &p.rules[i]
		if tcp && ru.skipsTCP(p.action) {
			continue
		}
		if ru.matches(r, tcp) {
			return i
		}
	}
	return -1
}

// Decision is the outcome of Authorize. Allow is the verdict; the other
// fields say which policy decided and why, without allocating: Reason
// renders them.
type Decision struct {
	Allow bool

	// Action and Policy name the deciding policy and Rule its matching
	// rule. Action is empty when no policy decided (no ALLOW policy applies,
	// or ALLOW policies apply and none matched); Rule is -1 then.
	Action Action
	Policy PolicyRef
	Rule   int

	// Audit is set when an AUDIT policy matched; it never changes Allow.
	Audit       bool
	AuditPolicy PolicyRef
	AuditRule   int

	// AllowPolicies lists the ALLOW policies that apply when none matched:
	// the request was denied because of them. It is shared; do not modify.
	AllowPolicies []PolicyRef

	// Err is ErrCustomAction when a CUSTOM policy matched.
	Err error
}

// Reason explains the decision in one line, for logs and traces.
func (d Decision) Reason() string {
	var b strings.Builder
	switch {
	case d.Action != "":
		if d.Allow {
			b.WriteString("allowed by ")
		} else {
			b.WriteString("denied by ")
		}
		fmt.Fprintf(&b, "AuthorizationPolicy %s (%s) rule %d", d.Policy, d.Action, d.Rule)
		if d.Err != nil {
			b.WriteString(": ")
			b.WriteString(d.Err.Error())
		}
	case d.Allow:
		b.WriteString("allowed: no ALLOW policy applies")
	default:
		names := make([]string, len(d.AllowPolicies))
		for i, p := range d.AllowPolicies {
			names[i] = p.String()
		}
		fmt.Fprintf(&b, "denied: ALLOW policies apply (%s) and none matches", strings.Join(names, ", "))
	}
	if d.Audit {
		fmt.Fprintf(&b, "; audited by AuthorizationPolicy %s rule %d", d.AuditPolicy, d.AuditRule)
	}
	return b.String()
}

func (d Decision) String() string { return d.Reason() }

// authorize applies Istio's order: CUSTOM, then DENY, then ALLOW; AUDIT
// only marks the decision. The request must be prepared.
func (v *WorkloadView) authorize(r *Request) Decision {
	d := Decision{Rule: -1, AuditRule: -1}
	for _, p := range v.audit {
		if i := p.match(r); i >= 0 {
			d.Audit, d.AuditPolicy, d.AuditRule = true, p.ref, i
			break
		}
	}
	for _, p := range v.custom {
		if i := p.match(r); i >= 0 {
			d.Action, d.Policy, d.Rule, d.Err = ActionCustom, p.ref, i, ErrCustomAction
			return d
		}
	}
	for _, p := range v.deny {
		if i := p.match(r); i >= 0 {
			d.Action, d.Policy, d.Rule = ActionDeny, p.ref, i
			return d
		}
	}
	if len(v.allow) == 0 {
		d.Allow = true
		return d
	}
	for _, p := range v.allow {
		if i := p.match(r); i >= 0 {
			d.Allow, d.Action, d.Policy, d.Rule = true, ActionAllow, p.ref, i
			return d
		}
	}
	d.AllowPolicies = v.allowRefs
	return d
}
