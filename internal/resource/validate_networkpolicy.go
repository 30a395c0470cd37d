package resource

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// validateNetworkPolicy applies the apiserver's NetworkPolicy validation.
func validateNetworkPolicy(v *validator, np *networkingv1.NetworkPolicy) {
	v.selector(&np.Spec.PodSelector, "spec.podSelector", false)
	for i, r := range np.Spec.Ingress {
		p := fmt.Sprintf("spec.ingress[%d]", i)
		v.npPorts(r.Ports, p+".ports")
		v.npPeers(r.From, p+".from")
	}
	for i, r := range np.Spec.Egress {
		p := fmt.Sprintf("spec.egress[%d]", i)
		v.npPorts(r.Ports, p+".ports")
		v.npPeers(r.To, p+".to")
	}
	seen := map[networkingv1.PolicyType]bool{}
	for i, t := range np.Spec.PolicyTypes {
		p := fmt.Sprintf("spec.policyTypes[%d]", i)
		switch t {
		case networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress:
		default:
			v.add(p, "unknown policy type %q (want Ingress or Egress)", t)
		}
		if seen[t] {
			v.add(p, "duplicate policy type %q", t)
		}
		seen[t] = true
	}
}

func (v *validator) npPorts(ports []networkingv1.NetworkPolicyPort, path string) {
	for i, pt := range ports {
		p := fmt.Sprintf("%s[%d]", path, i)
		if pt.Protocol != nil {
			switch *pt.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				v.add(p+".protocol", "unsupported protocol %q (want TCP, UDP or SCTP)", *pt.Protocol)
			}
		}
		if pt.Port != nil {
			if pt.Port.Type == intstr.Int {
				v.portNumber(int64(pt.Port.IntVal), p+".port", false)
			} else {
				v.portName(pt.Port.StrVal, p+".port")
			}
		}
		if pt.EndPort == nil {
			continue
		}
		switch {
		case pt.Port == nil:
			v.add(p+".endPort", "endPort requires port")
		case pt.Port.Type == intstr.String:
			v.add(p+".endPort", "endPort cannot be used with named port %q", pt.Port.StrVal)
		case *pt.EndPort < pt.Port.IntVal:
			v.add(p+".endPort", "endPort %d is below port %d", *pt.EndPort, pt.Port.IntVal)
		default:
			v.portNumber(int64(*pt.EndPort), p+".endPort", false)
		}
	}
}

func (v *validator) npPeers(peers []networkingv1.NetworkPolicyPeer, path string) {
	for i, peer := range peers {
		p := fmt.Sprintf("%s[%d]", path, i)
		hasSel := peer.PodSelector != nil || peer.NamespaceSelector != nil
		switch {
		case peer.IPBlock != nil && hasSel:
			v.add(p, "ipBlock cannot be combined with podSelector or namespaceSelector")
		case peer.IPBlock == nil && !hasSel:
			v.add(p, "a peer needs podSelector, namespaceSelector or ipBlock")
		}
		v.selector(peer.PodSelector, p+".podSelector", false)
		v.selector(peer.NamespaceSelector, p+".namespaceSelector", false)
		if b := peer.IPBlock; b != nil {
			if b.CIDR == "" {
				v.add(p+".ipBlock.cidr", "cidr is required")
				continue
			}
			cidr, _ := v.prefix(b.CIDR, p+".ipBlock.cidr", false)
			v.except(cidr, b.Except, p+".ipBlock.except")
		}
	}
}
