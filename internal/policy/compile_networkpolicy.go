package policy

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/rampartsec/rampart/internal/labels"
	"github.com/rampartsec/rampart/internal/resource"
)

// compileNetworkPolicy translates a Kubernetes NetworkPolicy. Its meaning
// follows the Kubernetes API reference exactly:
//   - policyTypes defaults to [Ingress], plus Egress when spec.egress has
//     rules; a direction not in policyTypes ignores its rules;
//   - a selected pod is isolated in each direction of policyTypes;
//   - an empty from/to allows every peer, empty ports allow all traffic;
//   - podSelector alone selects pods in the policy's namespace,
//     namespaceSelector alone selects all pods of the matching namespaces,
//     both in one peer must both match, ipBlock matches addresses.
func compileNetworkPolicy(o *resource.Object) ([]*Rule, []*Selection, error) {
	np := o.Obj.(*networkingv1.NetworkPolicy)
	ns := o.Namespace
	subject, err := labels.FromLabelSelector(&np.Spec.PodSelector, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("spec.podSelector: %w", err)
	}
	subject = subject.With(nsRequirement(ns))
	types := np.Spec.PolicyTypes
	if len(types) == 0 {
		types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(np.Spec.Egress) > 0 {
			types = append(types, networkingv1.PolicyTypeEgress)
		}
	}
	origin := func(path string) Origin {
		return Origin{Kind: o.Kind, Namespace: ns, Name: o.Name, Path: path, File: o.Source.File, Line: o.Line(path)}
	}
	var (
		rules []*Rule
		sels  []*Selection
	)
	for _, t := range types {
		dir, items := Ingress, len(np.Spec.Ingress)
		if t == networkingv1.PolicyTypeEgress {
			dir, items = Egress, len(np.Spec.Egress)
		}
		sels = append(sels, &Selection{Origin: origin(""), Namespace: ns, Subject: subject, Direction: dir, DefaultDeny: true})
		for i := 0; i < items; i++ {
			var (
				peers []networkingv1.NetworkPolicyPeer
				ports []networkingv1.NetworkPolicyPort
				path  string
			)
			if dir == Ingress {
				peers, ports, path = np.Spec.Ingress[i].From, np.Spec.Ingress[i].Ports, fmt.Sprintf("spec.ingress[%d]", i)
			} else {
				peers, ports, path = np.Spec.Egress[i].To, np.Spec.Egress[i].Ports, fmt.Sprintf("spec.egress[%d]", i)
			}
			r := &Rule{Origin: origin(path), Namespace: ns, Subject: subject, Direction: dir, AllPeers: len(peers) == 0}
			for j, p := range peers {
				peer, err := npPeer(p, ns)
				if err != nil {
					return nil, nil, fmt.Errorf("%s.peers[%d]: %w", path, j, err)
				}
				r.Peers = append(r.Peers, peer)
			}
			r.Ports = npPorts(ports)
			rules = append(rules, r)
		}
	}
	return rules, sels, nil
}

func nsRequirement(ns string) labels.Requirement {
	return labels.Requirement{Key: labels.NamespaceKey, Op: labels.In, Values: []string{ns}}
}

// isEndpoint is the requirement every pod identity satisfies and no reserved
// or CIDR identity does.
var isEndpoint = labels.Requirement{Key: labels.NamespaceKey, Op: labels.Exists}

func npPeer(p networkingv1.NetworkPolicyPeer, ns string) (Peer, error) {
	if b := p.IPBlock; b != nil {
		cidr, err := resource.ParsePrefix(b.CIDR, false)
		if err != nil {
			return Peer{}, err
		}
		peer := Peer{CIDR: cidr}
		for _, e := range b.Except {
			ep, err := resource.ParsePrefix(e, false)
			if err != nil {
				return Peer{}, err
			}
			peer.Except = append(peer.Except, ep)
		}
		return peer, nil
	}
	sel, err := labels.FromLabelSelector(p.PodSelector, nil)
	if err != nil {
		return Peer{}, err
	}
	if p.NamespaceSelector == nil {
		sel = sel.With(nsRequirement(ns))
	} else {
		nsSel, err := labels.FromLabelSelector(p.NamespaceSelector, labels.NamespaceLabelKey)
		if err != nil {
			return Peer{}, err
		}
		sel = sel.And(nsSel).With(isEndpoint)
	}
	return Peer{Selector: &sel}, nil
}

// npPorts translates NetworkPolicy ports; nil means all traffic.
func npPorts(ports []networkingv1.NetworkPolicyPort) []PortRange {
	if len(ports) == 0 {
		return nil
	}
	out := make([]PortRange, 0, len(ports))
	for _, p := range ports {
		proto := TCP
		if p.Protocol != nil {
			switch *p.Protocol {
			case corev1.ProtocolUDP:
				proto = UDP
			case corev1.ProtocolSCTP:
				proto = SCTP
			}
		}
		r := PortRange{Proto: proto, Lo: 0, Hi: 65535}
		switch {
		case p.Port == nil:
		case p.Port.Type == intstr.String:
			r = PortRange{Proto: proto, Name: p.Port.StrVal}
		default:
			r.Lo, r.Hi = uint16(p.Port.IntVal), uint16(p.Port.IntVal)
			if p.EndPort != nil {
				r.Hi = uint16(*p.EndPort)
			}
		}
		out = append(out, r)
	}
	return out
}
