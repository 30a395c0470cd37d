package policy

import (
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rampartsec/rampart/internal/labels"
	"github.com/rampartsec/rampart/internal/resource"
)

// compileCilium translates a CiliumNetworkPolicy or
// CiliumClusterwideNetworkPolicy as Cilium defines it:
//   - a rule with ingress or ingressDeny rules enables default deny at
//     ingress unless enableDefaultDeny.ingress is false (likewise egress);
//   - deny rules win over every allow, of any policy kind;
//   - in a namespaced policy, selectors without a namespace label are
//     confined to the policy's namespace;
//   - a rule with ports but no peers allows every peer on those ports; a rule
//     with neither ("- {}") allows nothing;
//   - CIDR rules match only peers outside the cluster.
func compileCilium(o *resource.Object) ([]*Rule, []*Selection, error) {
	p := o.Obj.(*resource.CiliumNetworkPolicy)
	ns := o.Namespace // "" for the cluster-wide kind
	var (
		rules []*Rule
		sels  []*Selection
	)
	base := "spec"
	for k, cr := range p.Rules() {
		if p.Spec == nil || k > 0 {
			idx := k
			if p.Spec != nil {
				idx--
			}
			base = fmt.Sprintf("specs[%d]", idx)
		}
		c := ciliumCompiler{obj: o, ns: ns}
		subject, err := c.selector(cr.EndpointSelector, false)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.endpointSelector: %w", base, err)
		}
		c.subject = subject.With(isEndpoint)
		for _, dir := range []Direction{Ingress, Egress} {
			has := len(cr.Ingress)+len(cr.IngressDeny) > 0
			enable := cr.EnableDefaultDeny != nil && cr.EnableDefaultDeny.Ingress != nil
			if dir == Egress {
				has = len(cr.Egress)+len(cr.EgressDeny) > 0
				enable = cr.EnableDefaultDeny != nil && cr.EnableDefaultDeny.Egress != nil
			}
			if !has {
				continue
			}
			deflt := true
			if enable {
				if dir == Ingress {
					deflt = *cr.EnableDefaultDeny.Ingress
				} else {
					deflt = *cr.EnableDefaultDeny.Egress
				}
			}
			sels = append(sels, &Selection{Origin: c.origin(base), Namespace: ns, Subject: c.subject, Direction: dir, DefaultDeny: deflt})
		}
		for i, r := range cr.Ingress {
			if err := c.ingress(&rules, r, fmt.Sprintf("%s.ingress[%d]", base, i), false); err != nil {
				return nil, nil, err
			}
		}
		for i, r := range cr.IngressDeny {
			if err := c.ingress(&rules, r, fmt.Sprintf("%s.ingressDeny[%d]", base, i), true); err != nil {
				return nil, nil, err
			}
		}
		for i, r := range cr.Egress {
			if err := c.egress(&rules, r, fmt.Sprintf("%s.egress[%d]", base, i), false); err != nil {
				return nil, nil, err
			}
		}
		for i, r := range cr.EgressDeny {
			if err := c.egress(&rules, r, fmt.Sprintf("%s.egressDeny[%d]", base, i), true); err != nil {
				return nil, nil, err
			}
		}
	}
	return rules, sels, nil
}

type ciliumCompiler struct {
	obj     *resource.Object
	ns      string
	subject labels.Selector
}

func (c *ciliumCompiler) origin(path string) Origin {
	return Origin{Kind: c.obj.Kind, Namespace: c.ns, Name: c.obj.Name, Path: path, File: c.obj.Source.File, Line: c.obj.Line(path)}
}

// selector compiles a Cilium endpoint selector as Cilium's CRD parser
// does. A subject selector of a namespaced policy is always confined to the
// policy's namespace. A peer selector naming reserved labels selects
// reserved identities and is left alone; one that names neither the
// namespace nor namespace labels is confined to the policy's namespace;
// every other peer selector selects endpoints only.
func (c *ciliumCompiler) selector(ls *metav1.LabelSelector, peer bool) (labels.Selector, error) {
	sel, err := labels.FromLabelSelector(ls, labels.CiliumKey)
	if err != nil {
		return sel, err
	}
	if !peer {
		if c.ns != "" {
			sel = sel.With(nsRequirement(c.ns))
		}
		return sel, nil
	}
	if sel.HasKeyPrefix(labels.ReservedPrefix) {
		return sel, nil
	}
	if c.ns != "" && !sel.HasKey(labels.NamespaceKey) && !sel.HasKeyPrefix(labels.NamespaceLabelPrefix) {
		sel = sel.With(nsRequirement(c.ns))
	}
	return sel.With(isEndpoint), nil
}

func (c *ciliumCompiler) ingress(out *[]*Rule, r resource.CiliumIngressRule, path string, deny bool) error {
	peers, err := c.peers(r.FromEndpoints, r.FromCIDR, r.FromCIDRSet, r.FromEntities, path, "from")
	if err != nil {
		return err
	}
	return c.emit(out, Ingress, deny, peers, r.ToPorts, r.ICMPs, path)
}

func (c *ciliumCompiler) egress(out *[]*Rule, r resource.CiliumEgressRule, path string, deny bool) error {
	peers, err := c.peers(r.ToEndpoints, r.ToCIDR, r.ToCIDRSet, r.ToEntities, path, "to")
	if err != nil {
		return err
	}
	if len(r.ToFQDNs) > 0 {
		// toFQDNs is enforced once the DNS proxy exists; until then it
		// allows nothing, which is the fail-closed reading. It still counts
		// as a peer, so the rule is not an L3 wildcard.
		peers.explicit = true
	}
	return c.emit(out, Egress, deny, peers, r.ToPorts, r.ICMPs, path)
}

type ciliumPeers struct {
	list     []Peer
	all      bool
	explicit bool // some peer field was given, even if it selects nothing
}

func (c *ciliumCompiler) peers(eps []metav1.LabelSelector, cidrs []string, sets []resource.CIDRRule, entities []string, path, dir string) (ciliumPeers, error) {
	var ps ciliumPeers
	ps.explicit = len(eps)+len(cidrs)+len(sets)+len(entities) > 0
	for i := range eps {
		sel, err := c.selector(&eps[i], true)
		if err != nil {
			return ps, fmt.Errorf("%s.%sEndpoints[%d]: %w", path, dir, i, err)
		}
		ps.list = append(ps.list, Peer{Selector: &sel})
	}
	for i, s := range cidrs {
		p, err := resource.ParsePrefix(s, true)
		if err != nil {
			return ps, fmt.Errorf("%s.%sCIDR[%d]: %w", path, dir, i, err)
		}
		ps.list = append(ps.list, Peer{CIDR: p, WorldOnly: true})
	}
	for i, s := range sets {
		p, err := resource.ParsePrefix(s.CIDR, false)
		if err != nil {
			return ps, fmt.Errorf("%s.%sCIDRSet[%d]: %w", path, dir, i, err)
		}
		peer := Peer{CIDR: p, WorldOnly: true}
		for _, e := range s.Except {
			ep, err := resource.ParsePrefix(e, false)
			if err != nil {
				return ps, fmt.Errorf("%s.%sCIDRSet[%d]: %w", path, dir, i, err)
			}
			peer.Except = append(peer.Except, ep)
		}
		ps.list = append(ps.list, peer)
	}
	for _, e := range entities {
		if e == "all" {
			ps.all = true
			continue
		}
		ps.list = append(ps.list, entityPeers(e)...)
	}
	return ps, nil
}

// entityPeers returns the peers a Cilium entity stands for.
func entityPeers(e string) []Peer {
	reserved := func(name string) Peer {
		s := labels.NewSelector(labels.Requirement{Key: labels.ReservedPrefix + name, Op: labels.Exists})
		return Peer{Selector: &s}
	}
	switch e {
	case "world":
		return []Peer{reserved("world")}
	case "world-ipv4":
		return []Peer{{CIDR: netip.MustParsePrefix("0.0.0.0/0"), WorldOnly: true}}
	case "world-ipv6":
		return []Peer{{CIDR: netip.MustParsePrefix("::/0"), WorldOnly: true}}
	case "cluster":
		all := labels.NewSelector(isEndpoint)
		return []Peer{{Selector: &all}, reserved("host"), reserved("remote-node"), reserved("init"),
			reserved("health"), reserved("unmanaged"), reserved("ingress")}
	case "none":
		return nil
	}
	return []Peer{reserved(e)}
}

// emit appends one rule per toPorts entry (each may carry its own L7
// rules), one for the ICMP types, or one for all traffic when the rule names
// neither.
func (c *ciliumCompiler) emit(out *[]*Rule, dir Direction, deny bool, peers ciliumPeers, toPorts []resource.PortRule, icmps []resource.ICMPRule, path string) error {
	if !peers.explicit && len(toPorts) == 0 && len(icmps) == 0 {
		return nil // "- {}": enables default deny, allows nothing
	}
	all := peers.all || !peers.explicit
	mk := func(p string) *Rule {
		return &Rule{Origin: c.origin(p), Namespace: c.ns, Subject: c.subject, Direction: dir, Deny: deny, AllPeers: all, Peers: peers.list}
	}
	if len(toPorts) == 0 && len(icmps) == 0 {
		*out = append(*out, mk(path))
		return nil
	}
	for j, tp := range toPorts {
		r := mk(fmt.Sprintf("%s.toPorts[%d]", path, j))
		r.Ports = ciliumPorts(tp.Ports)
		// rules.dns is enforced by the DNS proxy, which is not built yet; at
		// L4 the port is allowed, as in Cilium. docs/policy-semantics.md
		// says so.
		if tp.Rules != nil {
			for _, h := range tp.Rules.HTTP {
				r.HTTP = append(r.HTTP, compileHTTP(h))
			}
		}
		*out = append(*out, r)
	}
	if len(icmps) > 0 {
		r := mk(path + ".icmps")
		r.Ports = []PortRange{}
		for _, ic := range icmps {
			for _, f := range ic.Fields {
				t, err := resource.ICMPType(f.Family, f.Type)
				if err != nil {
					return fmt.Errorf("%s.icmps: %w", path, err)
				}
				proto := ICMP
				if f.Family == "IPv6" {
					proto = ICMPv6
				}
				r.Ports = append(r.Ports, PortRange{Proto: proto, Lo: uint16(t), Hi: uint16(t)})
			}
		}
		*out = append(*out, r)
	}
	return nil
}

// ciliumPorts translates toPorts.ports; "ANY" (the default) is TCP, UDP and
// SCTP, port 0 or empty is every port. An empty list is all L4 ports.
func ciliumPorts(ports []resource.PortProtocol) []PortRange {
	if len(ports) == 0 {
		ports = []resource.PortProtocol{{}}
	}
	var out []PortRange
	for _, p := range ports {
		var protos []Protocol
		switch strings.ToUpper(p.Protocol) {
		case "TCP":
			protos = []Protocol{TCP}
		case "UDP":
			protos = []Protocol{UDP}
		case "SCTP":
			protos = []Protocol{SCTP}
		default:
			protos = []Protocol{TCP, UDP, SCTP}
		}
		num, name, _ := resource.ParsePort(p.Port)
		for _, proto := range protos {
			r := PortRange{Proto: proto, Lo: uint16(num), Hi: uint16(num)}
			switch {
			case name != "":
				r = PortRange{Proto: proto, Name: name}
			case num == 0:
				r.Lo, r.Hi = 0, 65535
			case p.EndPort != 0:
				r.Hi = uint16(p.EndPort)
			}
			out = append(out, r)
		}
	}
	return out
}

func compileHTTP(h resource.HTTPRule) HTTPRule {
	r := HTTPRule{Method: anchored(h.Method), Path: anchored(h.Path), Host: anchored(h.Host)}
	var parts []string
	if h.Method != "" {
		parts = append(parts, "method="+h.Method)
	}
	if h.Path != "" {
		parts = append(parts, "path="+h.Path)
	}
	if h.Host != "" {
		parts = append(parts, "host="+h.Host)
	}
	for _, hdr := range h.Headers {
		name, val, ok := strings.Cut(hdr, ":")
		r.Headers = append(r.Headers, HeaderMatch{Name: strings.TrimSpace(name), Value: strings.TrimSpace(val), HasValue: ok})
		parts = append(parts, "header="+hdr)
	}
	for _, hm := range h.HeaderMatches {
		r.Headers = append(r.Headers, HeaderMatch{Name: hm.Name, Value: hm.Value, HasValue: hm.Value != ""})
		parts = append(parts, "header="+hm.Name+": "+hm.Value)
	}
	r.Source = strings.Join(parts, " ")
	if r.Source == "" {
		r.Source = "any request"
	}
	return r
}
