package resource

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// CiliumEntities are the entity names fromEntities and toEntities accept.
var CiliumEntities = map[string]bool{
	"all": true, "world": true, "world-ipv4": true, "world-ipv6": true, "cluster": true,
	"host": true, "remote-node": true, "kube-apiserver": true, "init": true,
	"health": true, "unmanaged": true, "ingress": true, "none": true,
}

func validateCNP(v *validator, p *CiliumNetworkPolicy) {
	if p.Spec == nil && len(p.Specs) == 0 {
		v.add("spec", "spec or specs is required")
	}
	if p.Spec != nil {
		v.ciliumRule(p.Spec, "spec")
	}
	for i := range p.Specs {
		v.ciliumRule(&p.Specs[i], fmt.Sprintf("specs[%d]", i))
	}
}

func (v *validator) unsupported(present bool, path, what string) {
	if present {
		v.add(path, "%s is not supported by Rampart yet", what)
	}
}

func (v *validator) ciliumRule(r *CiliumRule, path string) {
	switch {
	case r.NodeSelector != nil:
		v.unsupported(true, path+".nodeSelector", "nodeSelector (host policy)")
	case r.EndpointSelector == nil:
		v.add(path+".endpointSelector", "endpointSelector is required")
	}
	v.selector(r.EndpointSelector, path+".endpointSelector", true)
	for i := range r.Ingress {
		v.ciliumIngress(&r.Ingress[i], fmt.Sprintf("%s.ingress[%d]", path, i), false)
	}
	for i := range r.IngressDeny {
		v.ciliumIngress(&r.IngressDeny[i], fmt.Sprintf("%s.ingressDeny[%d]", path, i), true)
	}
	for i := range r.Egress {
		v.ciliumEgress(&r.Egress[i], fmt.Sprintf("%s.egress[%d]", path, i), false)
	}
	for i := range r.EgressDeny {
		v.ciliumEgress(&r.EgressDeny[i], fmt.Sprintf("%s.egressDeny[%d]", path, i), true)
	}
}

func (v *validator) ciliumIngress(r *CiliumIngressRule, path string, deny bool) {
	for i := range r.FromEndpoints {
		v.selector(&r.FromEndpoints[i], fmt.Sprintf("%s.fromEndpoints[%d]", path, i), true)
	}
	v.unsupported(len(r.FromRequires) > 0, path+".fromRequires", "fromRequires")
	v.unsupported(len(r.FromGroups) > 0, path+".fromGroups", "fromGroups")
	v.unsupported(len(r.FromNodes) > 0, path+".fromNodes", "fromNodes")
	v.unsupported(r.Authentication != nil, path+".authentication", "authentication (use the mesh's PeerAuthentication)")
	v.cidrs(r.FromCIDR, path+".fromCIDR")
	v.cidrSets(r.FromCIDRSet, path+".fromCIDRSet")
	v.entities(r.FromEntities, path+".fromEntities")
	v.portRules(r.ToPorts, path+".toPorts", deny, false)
	v.icmps(r.ICMPs, path+".icmps")
}

func (v *validator) ciliumEgress(r *CiliumEgressRule, path string, deny bool) {
	for i := range r.ToEndpoints {
		v.selector(&r.ToEndpoints[i], fmt.Sprintf("%s.toEndpoints[%d]", path, i), true)
	}
	v.unsupported(len(r.ToRequires) > 0, path+".toRequires", "toRequires")
	v.unsupported(len(r.ToGroups) > 0, path+".toGroups", "toGroups")
	v.unsupported(len(r.ToServices) > 0, path+".toServices", "toServices")
	v.unsupported(len(r.ToNodes) > 0, path+".toNodes", "toNodes")
	v.unsupported(r.Authentication != nil, path+".authentication", "authentication (use the mesh's PeerAuthentication)")
	v.cidrs(r.ToCIDR, path+".toCIDR")
	v.cidrSets(r.ToCIDRSet, path+".toCIDRSet")
	v.entities(r.ToEntities, path+".toEntities")
	if deny && len(r.ToFQDNs) > 0 {
		v.add(path+".toFQDNs", "toFQDNs is not allowed in egressDeny")
	}
	for i, f := range r.ToFQDNs {
		v.fqdn(f, fmt.Sprintf("%s.toFQDNs[%d]", path, i))
	}
	v.portRules(r.ToPorts, path+".toPorts", deny, true)
	v.icmps(r.ICMPs, path+".icmps")
}

func (v *validator) cidrs(cidrs []string, path string) {
	for i, c := range cidrs {
		v.prefix(c, fmt.Sprintf("%s[%d]", path, i), true)
	}
}

func (v *validator) cidrSets(sets []CIDRRule, path string) {
	for i, s := range sets {
		p := fmt.Sprintf("%s[%d]", path, i)
		if s.CIDRGroupRef != "" || s.CIDRGroupSelector != nil {
			v.unsupported(true, p, "cidrGroupRef and cidrGroupSelector")
			continue
		}
		if s.CIDR == "" {
			v.add(p+".cidr", "cidr is required")
			continue
		}
		cidr, _ := v.prefix(s.CIDR, p+".cidr", false)
		v.except(cidr, s.Except, p+".except")
	}
}

func (v *validator) entities(es []string, path string) {
	for i, e := range es {
		if !CiliumEntities[e] {
			v.add(fmt.Sprintf("%s[%d]", path, i), "unknown entity %q (want one of all, world, cluster, host, remote-node, kube-apiserver, init, health, unmanaged)", e)
		}
	}
}

var (
	dnsNameRE    = regexp.MustCompile(`^[-a-zA-Z0-9_.]+\.?$`)
	dnsPatternRE = regexp.MustCompile(`^[-a-zA-Z0-9_.*]+\.?$`)
)

func (v *validator) fqdn(f FQDNSelector, path string) {
	switch {
	case f.MatchName == "" && f.MatchPattern == "":
		v.add(path, "matchName or matchPattern is required")
	case f.MatchName != "" && f.MatchPattern != "":
		v.add(path, "matchName and matchPattern are mutually exclusive")
	case f.MatchName != "" && !dnsNameRE.MatchString(f.MatchName):
		v.add(path+".matchName", "invalid DNS name %q", f.MatchName)
	case f.MatchPattern != "" && !dnsPatternRE.MatchString(f.MatchPattern):
		v.add(path+".matchPattern", "invalid DNS pattern %q (letters, digits, '-', '.', '_' and '*')", f.MatchPattern)
	}
}

func (v *validator) portRules(rules []PortRule, path string, deny, egress bool) {
	for i, pr := range rules {
		p := fmt.Sprintf("%s[%d]", path, i)
		for j, pp := range pr.Ports {
			v.ciliumPort(pp, fmt.Sprintf("%s.ports[%d]", p, j))
		}
		v.unsupported(pr.TerminatingTLS != nil, p+".terminatingTLS", "terminatingTLS")
		v.unsupported(pr.OriginatingTLS != nil, p+".originatingTLS", "originatingTLS")
		v.unsupported(pr.Listener != nil, p+".listener", "listener")
		v.unsupported(len(pr.ServerNames) > 0, p+".serverNames", "serverNames")
		if pr.Rules == nil {
			continue
		}
		if deny {
			v.add(p+".rules", "L7 rules are not allowed in deny rules")
			continue
		}
		v.l7(pr, p, egress)
	}
}

func (v *validator) ciliumPort(pp PortProtocol, path string) {
	switch strings.ToUpper(pp.Protocol) {
	case "", "TCP", "UDP", "SCTP", "ANY":
	default:
		v.add(path+".protocol", "unsupported protocol %q (want TCP, UDP, SCTP or ANY; use icmps for ICMP)", pp.Protocol)
	}
	num, name, _ := ParsePort(pp.Port)
	if name != "" {
		v.portName(name, path+".port")
		if pp.EndPort != 0 {
			v.add(path+".endPort", "endPort cannot be used with named port %q", name)
		}
		return
	}
	v.portNumber(num, path+".port", true)
	if pp.EndPort != 0 {
		if int64(pp.EndPort) < num {
			v.add(path+".endPort", "endPort %d is below port %d", pp.EndPort, num)
		} else {
			v.portNumber(int64(pp.EndPort), path+".endPort", false)
		}
	}
}

func (v *validator) l7(pr PortRule, path string, egress bool) {
	r := pr.Rules
	p := path + ".rules"
	v.unsupported(len(r.Kafka) > 0, p+".kafka", "kafka rules")
	v.unsupported(r.L7Proto != "" || len(r.L7) > 0, p+".l7proto", "generic L7 rules")
	if len(r.HTTP) > 0 && len(r.DNS) > 0 {
		v.add(p, "http and dns rules cannot be combined in one port rule")
	}
	if len(r.DNS) > 0 && !egress {
		v.add(p+".dns", "dns rules are only allowed in egress rules")
	}
	for _, pp := range pr.Ports {
		if len(r.HTTP) > 0 && strings.ToUpper(pp.Protocol) != "TCP" && pp.Protocol != "" && strings.ToUpper(pp.Protocol) != "ANY" {
			v.add(p+".http", "http rules need TCP ports, not %s", pp.Protocol)
		}
	}
	for i, h := range r.HTTP {
		hp := fmt.Sprintf("%s.http[%d]", p, i)
		v.regex(h.Path, hp+".path")
		v.regex(h.Method, hp+".method")
		v.regex(h.Host, hp+".host")
		for j, hdr := range h.Headers {
			name, _, _ := strings.Cut(hdr, ":")
			if strings.TrimSpace(name) == "" || strings.ContainsAny(strings.TrimSpace(name), " \t") {
				v.add(fmt.Sprintf("%s.headers[%d]", hp, j), "invalid header %q (want \"Name\" or \"Name: value\")", hdr)
			}
		}
		for j, hm := range h.HeaderMatches {
			mp := fmt.Sprintf("%s.headerMatches[%d]", hp, j)
			if hm.Name == "" {
				v.add(mp+".name", "name is required")
			}
			v.unsupported(hm.Secret != nil, mp+".secret", "header values from secrets")
			v.unsupported(hm.Mismatch != "", mp+".mismatch", "mismatch actions")
		}
	}
	for i, d := range r.DNS {
		v.fqdn(d, fmt.Sprintf("%s.dns[%d]", p, i))
	}
}

func (v *validator) icmps(rules []ICMPRule, path string) {
	for i, r := range rules {
		for j, f := range r.Fields {
			p := fmt.Sprintf("%s[%d].fields[%d]", path, i, j)
			if _, err := ICMPType(f.Family, f.Type); err != nil {
				v.add(p, "%v", err)
			}
		}
	}
}

var icmpNames = map[string]map[string]uint8{
	"IPv4": {
		"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
		"RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
		"Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
	},
	"IPv6": {
		"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
		"EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
		"MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
		"NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137,
		"ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
	},
}

// ICMPType resolves an icmps field to its family ("IPv4" or "IPv6") and type
// number; the type may be a number or one of Cilium's names.
func ICMPType(family string, t *intstr.IntOrString) (uint8, error) {
	if family == "" {
		family = "IPv4"
	}
	names, ok := icmpNames[family]
	if !ok {
		return 0, fmt.Errorf("unknown ICMP family %q (want IPv4 or IPv6)", family)
	}
	if t == nil {
		return 0, fmt.Errorf("type is required")
	}
	if t.Type == intstr.Int {
		if t.IntVal < 0 || t.IntVal > 255 {
			return 0, fmt.Errorf("ICMP type %d out of range 0-255", t.IntVal)
		}
		return uint8(t.IntVal), nil
	}
	n, ok := names[t.StrVal]
	if !ok {
		return 0, fmt.Errorf("unknown %s ICMP type %q", family, t.StrVal)
	}
	return n, nil
}
