package resource

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rampartsec/rampart/internal/labels"
)

func validatePod(v *validator, p *corev1.Pod) {
	v.podSpec(&p.Spec, "spec")
	for i, ip := range p.Status.PodIPs {
		if _, err := netip.ParseAddr(ip.IP); err != nil {
			v.add(fmt.Sprintf("status.podIPs[%d].ip", i), "invalid IP address %q", ip.IP)
		}
	}
	if p.Status.PodIP != "" {
		if _, err := netip.ParseAddr(p.Status.PodIP); err != nil {
			v.add("status.podIP", "invalid IP address %q", p.Status.PodIP)
		}
	}
}

// template checks a controller's selector and pod template: the selector
// must be valid and must select the template's labels, as the apiserver
// insists.
func (v *validator) template(sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, spec string) {
	v.labelMap(t.Labels, spec+".template.metadata.labels")
	if sel != nil {
		v.selector(sel, spec+".selector", false)
		if s, err := labels.FromLabelSelector(sel, nil); err == nil && !s.Empty() && !s.Matches(labels.New(t.Labels)) {
			v.add(spec+".selector", "selector does not match the template labels")
		}
	}
	v.podSpec(&t.Spec, spec+".template.spec")
}

// podSpec checks what Rampart relies on in a pod spec: container ports and
// their names, which named-port policy rules resolve against.
func (v *validator) podSpec(s *corev1.PodSpec, path string) {
	if s.ServiceAccountName != "" {
		if msgs := validation.IsDNS1123Subdomain(s.ServiceAccountName); len(msgs) > 0 {
			v.add(path+".serviceAccountName", "invalid service account name %q", s.ServiceAccountName)
		}
	}
	names := map[string]string{}
	check := func(cs []corev1.Container, field string) {
		for i, c := range cs {
			for j, p := range c.Ports {
				pp := fmt.Sprintf("%s.%s[%d].ports[%d]", path, field, i, j)
				v.portNumber(int64(p.ContainerPort), pp+".containerPort", false)
				switch p.Protocol {
				case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
				default:
					v.add(pp+".protocol", "unsupported protocol %q (want TCP, UDP or SCTP)", p.Protocol)
				}
				if p.Name == "" {
					continue
				}
				v.portName(p.Name, pp+".name")
				if prev, ok := names[p.Name]; ok {
					v.add(pp+".name", "port name %q is already used at %s", p.Name, prev)
				}
				names[p.Name] = pp
			}
		}
	}
	check(s.InitContainers, "initContainers")
	check(s.Containers, "containers")
}

func validateService(v *validator, s *corev1.Service) {
	for i, p := range s.Spec.Ports {
		pp := fmt.Sprintf("spec.ports[%d]", i)
		v.portNumber(int64(p.Port), pp+".port", false)
		if p.Name != "" {
			if msgs := validation.IsDNS1123Label(p.Name); len(msgs) > 0 {
				v.add(pp+".name", "invalid port name %q", p.Name)
			}
		}
	}
}
