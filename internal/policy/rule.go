package policy

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/labels"
)

// Rule is one compiled allow or deny rule. A flow matches it when the
// endpoint is selected by Subject, the peer matches one of Peers (or
// AllPeers is set), and the flow's protocol and port match one of Ports (or
// Ports is nil, meaning all traffic, ICMP included).
type Rule struct {
	Origin    Origin
	Namespace string // the namespace the subject is confined to; "" for cluster-wide
	Subject   labels.Selector
	Direction Direction
	Deny      bool
	AllPeers  bool
	Peers     []Peer
	Ports     []PortRange
	HTTP      []HTTPRule // non-empty: allowed traffic is filtered by the L7 proxy
}

// Selection records that a policy selects endpoints in a direction. A
// selection with DefaultDeny isolates the endpoint in that direction:
// traffic no rule allows is dropped. Policies without rules in a direction
// still select (NetworkPolicy with policyTypes: [Ingress] and no ingress
// rules denies all ingress), which is why selections are kept apart from
// rules.
type Selection struct {
	Origin      Origin
	Namespace   string
	Subject     labels.Selector
	Direction   Direction
	DefaultDeny bool
}

// Peer is one way a rule can match the remote side of a flow: a selector
// over identity labels, or a CIDR. CIDR peers from Kubernetes ipBlock match
// any peer by address, pods included; CIDR peers from Cilium (WorldOnly)
// match only peers outside the cluster, as Cilium does.
type Peer struct {
	Selector  *labels.Selector
	CIDR      netip.Prefix
	Except    []netip.Prefix
	WorldOnly bool
}

func (p Peer) String() string {
	if p.Selector != nil {
		return p.Selector.String()
	}
	s := p.CIDR.String()
	for _, e := range p.Except {
		s += " except " + e.String()
	}
	return s
}

// PeerInfo describes the remote side of a flow.
type PeerInfo struct {
	Identity *identity.Identity
	Addr     netip.Addr // invalid when the address is not known
}

func (p Peer) matches(peer PeerInfo) bool {
	if p.Selector != nil {
		return peer.Identity != nil && p.Selector.Matches(peer.Identity.Labels)
	}
	if !peer.Addr.IsValid() || !p.CIDR.Contains(peer.Addr) {
		return false
	}
	for _, e := range p.Except {
		if e.Contains(peer.Addr) {
			return false
		}
	}
	return !p.WorldOnly || (peer.Identity != nil && peer.Identity.IsWorld())
}

func (r *Rule) matchesPeer(peer PeerInfo) bool {
	if r.AllPeers {
		return true
	}
	for _, p := range r.Peers {
		if p.matches(peer) {
			return true
		}
	}
	return false
}

// matchesPort reports whether the rule covers proto/port. named holds the
// container ports of the flow's destination endpoint, which named ports
// resolve against; nil when the destination is not an endpoint.
func (r *Rule) matchesPort(proto Protocol, port uint16, named map[string]NamedPort) bool {
	if r.Ports == nil {
		return true
	}
	for _, pr := range r.Ports {
		if pr.Proto != proto {
			continue
		}
		if pr.Name != "" {
			if np, ok := named[pr.Name]; ok && np.Proto == proto && np.Port == port {
				return true
			}
			continue
		}
		if port >= pr.Lo && port <= pr.Hi {
			return true
		}
	}
	return false
}

// HTTPRule is a compiled Cilium rules.http entry. Every set field must match
// a request; regular expressions match the whole value.
type HTTPRule struct {
	Method  *regexp.Regexp
	Path    *regexp.Regexp
	Host    *regexp.Regexp
	Headers []HeaderMatch
	Source  string // the rule as written, for messages
}

// HeaderMatch requires a header to be present, with Value if Value is set.
type HeaderMatch struct {
	Name     string
	Value    string
	HasValue bool
}

// HTTPRequest is the part of an HTTP request L7 rules look at.
type HTTPRequest struct {
	Method  string
	Path    string
	Host    string
	Headers map[string][]string // canonical header names
}

func (h HTTPRule) matches(req HTTPRequest) bool {
	if h.Method != nil && !h.Method.MatchString(req.Method) {
		return false
	}
	if h.Path != nil && !h.Path.MatchString(req.Path) {
		return false
	}
	if h.Host != nil && !h.Host.MatchString(req.Host) {
		return false
	}
	for _, hm := range h.Headers {
		vals, ok := lookupHeader(req.Headers, hm.Name)
		if !ok {
			return false
		}
		if hm.HasValue && !slices.Contains(vals, hm.Value) {
			return false
		}
	}
	return true
}

func lookupHeader(h map[string][]string, name string) ([]string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// anchored compiles expr to match a whole value, as Cilium's (Envoy's) L7
// regular expressions do. Decoding has already validated expr.
func anchored(expr string) *regexp.Regexp {
	if expr == "" {
		return nil
	}
	return regexp.MustCompile("^(?:" + expr + ")$")
}
