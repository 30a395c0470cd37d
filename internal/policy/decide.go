package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rampartsec/rampart/internal/identity"
)

// Reason says why one side of a flow was allowed or denied.
type Reason uint8

// Reasons, in the words trace prints.
const (
	// NotSelected: no policy selects the endpoint in this direction.
	NotSelected Reason = iota
	// NotIsolated: policies select the endpoint but all of them disable
	// default deny (Cilium's enableDefaultDeny: false), and no deny matched.
	NotIsolated
	// AllowedByRule: an allow rule matched.
	AllowedByRule
	// DeniedByRule: a deny rule matched; deny wins over every allow.
	DeniedByRule
	// DefaultDeny: the endpoint is isolated and no rule allows the flow.
	DefaultDeny
	// L7Denied: a rule allows the port only for some HTTP requests, and
	// this request matches none of them.
	L7Denied
	// Self: traffic from an endpoint to itself is always allowed.
	Self
	// NotEndpoint: this side is not a Rampart endpoint, so Rampart has no
	// policy to apply there.
	NotEndpoint
)

// Side is one end of a flow.
type Side struct {
	Endpoint *Endpoint // nil when the side is not an endpoint
	Identity *identity.Identity
	Addr     netip.Addr
}

// String names the side as trace prints it.
func (s Side) String() string {
	switch {
	case s.Endpoint != nil:
		return s.Endpoint.Ref()
	case s.Addr.IsValid():
		return s.Addr.String()
	case s.Identity != nil:
		if n := identity.ReservedName(s.Identity.ID); n != "" {
			return n
		}
	}
	return "?"
}

// Flow is a connection attempt from Src to Dst.
type Flow struct {
	Src, Dst Side
	Proto    Protocol
	Port     uint16 // destination port, or ICMP type
	HTTP     *HTTPRequest
}

// Decision is the verdict of one side of a flow.
type Decision struct {
	Direction Direction
	Allowed   bool
	Reason    Reason
	// Rule is the rule that decided, for AllowedByRule and DeniedByRule.
	Rule *Rule
	// Selecting lists the policies that select the endpoint in this
	// direction (shared with the repository: do not modify).
	Selecting []*Selection
	// L7 lists the rules whose HTTP rules filter this flow, when the L4
	// verdict is "allowed, through the proxy".
	L7 []*Rule
	// HTTPRule is the HTTP rule that allowed the request, when one did.
	HTTPRule *HTTPRule
}

// Verdict is the decision for a whole flow: both sides must allow it.
type Verdict struct {
	Allowed bool
	Egress  Decision // the source's egress
	Ingress Decision // the destination's ingress
}

// Decide returns the verdict for f. This is the one evaluator behind trace,
// the matrix and the verdict tables the datapath programs.
func (r *Repository) Decide(f Flow) Verdict {
	if f.Src.Endpoint != nil && f.Src.Endpoint == f.Dst.Endpoint {
		return Verdict{Allowed: true,
			Egress:  Decision{Direction: Egress, Allowed: true, Reason: Self},
			Ingress: Decision{Direction: Ingress, Allowed: true, Reason: Self}}
	}
	var named map[string]NamedPort
	if f.Dst.Endpoint != nil {
		named = f.Dst.Endpoint.NamedPorts
	}
	eg := r.decideSide(f.Src, f.Dst, Egress, f, named)
	in := r.decideSide(f.Dst, f.Src, Ingress, f, named)
	return Verdict{Allowed: eg.Allowed && in.Allowed, Egress: eg, Ingress: in}
}

func (r *Repository) decideSide(self, peer Side, dir Direction, f Flow, named map[string]NamedPort) Decision {
	d := Decision{Direction: dir}
	if self.Endpoint == nil {
		d.Allowed, d.Reason = true, NotEndpoint
		return d
	}
	res := r.resolved[self.Endpoint.Identity.ID]
	if res == nil {
		d.Allowed, d.Reason = true, NotSelected
		return d
	}
	dp := res.Dir(dir)
	d.Selecting = dp.Selections
	pi := PeerInfo{Identity: peer.Identity, Addr: peer.Addr}
	var allows []*Rule
	for _, rule := range dp.Rules {
		if !rule.matchesPeer(pi) || !rule.matchesPort(f.Proto, f.Port, named) {
			continue
		}
		if rule.Deny {
			d.Reason, d.Rule = DeniedByRule, rule
			return d
		}
		allows = append(allows, rule)
	}
	if len(allows) == 0 {
		switch {
		case dp.Enforced:
			d.Reason = DefaultDeny
		case len(dp.Selections) > 0:
			d.Allowed, d.Reason = true, NotIsolated
		default:
			d.Allowed, d.Reason = true, NotSelected
		}
		return d
	}
	// An allow without HTTP rules opens the port for every request; only
	// when every matching allow carries HTTP rules is the flow filtered at
	// L7, by the union of those rules.
	for _, rule := range allows {
		if len(rule.HTTP) == 0 {
			d.Allowed, d.Reason, d.Rule = true, AllowedByRule, rule
			return d
		}
	}
	d.L7 = allows
	if f.HTTP == nil {
		d.Allowed, d.Reason, d.Rule = true, AllowedByRule, allows[0]
		return d
	}
	for _, rule := range allows {
		for i := range rule.HTTP {
			if rule.HTTP[i].matches(*f.HTTP) {
				d.Allowed, d.Reason, d.Rule, d.HTTPRule = true, AllowedByRule, rule, &rule.HTTP[i]
				return d
			}
		}
	}
	d.Reason = L7Denied
	return d
}

// Explain returns the one-line explanation trace prints for d.
func (d Decision) Explain() string {
	sel := func() string {
		names := make([]string, 0, len(d.Selecting))
		seen := map[string]bool{}
		for _, s := range d.Selecting {
			if p := s.Origin.Policy(); !seen[p] {
				seen[p] = true
				names = append(names, p)
			}
		}
		return strings.Join(names, ", ")
	}
	switch d.Reason {
	case NotSelected:
		return "not selected by any policy: allowed"
	case NotIsolated:
		return fmt.Sprintf("selected by %s with default deny disabled, no rule matches: allowed", sel())
	case AllowedByRule:
		s := fmt.Sprintf("allowed by %s", d.Rule.Origin)
		if len(d.L7) > 0 {
			if d.HTTPRule != nil {
				s += fmt.Sprintf(" (HTTP rule %s)", d.HTTPRule.Source)
			} else {
				s += " (HTTP requests are filtered by its L7 rules)"
			}
		}
		return s
	case DeniedByRule:
		return fmt.Sprintf("denied by %s (deny rules win)", d.Rule.Origin)
	case DefaultDeny:
		return fmt.Sprintf("selected by %s, no rule allows: denied", sel())
	case L7Denied:
		origins := make([]string, len(d.L7))
		for i, r := range d.L7 {
			origins[i] = r.Origin.String()
		}
		return fmt.Sprintf("port allowed only for HTTP requests matching %s; this request matches none: denied (403)", strings.Join(origins, ", "))
	case Self:
		return "traffic from a pod to itself is always allowed"
	case NotEndpoint:
		return "not a Rampart endpoint: no policy applies"
	}
	return "unknown"
}
