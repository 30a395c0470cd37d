package policy

import (
	"net/netip"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/resource"
)

// Endpoint is a workload policy applies to: a pod, or, offline, the pod
// template of a controller (Deployment, StatefulSet, ...), which stands for
// every pod it creates.
type Endpoint struct {
	Kind           string // Pod, Deployment, ...
	Namespace      string
	Name           string
	Labels         map[string]string
	ServiceAccount string
	IPs            []netip.Addr
	NamedPorts     map[string]NamedPort
	Ports          []NamedPort // every declared container port, named or not
	Identity       *identity.Identity
}

// Ref returns "namespace/name", the form the CLI prints and accepts.
func (e *Endpoint) Ref() string { return e.Namespace + "/" + e.Name }

// Addr returns the endpoint's address of the given family (4 or 6), if the
// input declared one.
func (e *Endpoint) Addr(family int) (netip.Addr, bool) {
	for _, a := range e.IPs {
		if (family == 4) == a.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// endpointFromObject returns the endpoint a workload object stands for, or
// nil if the object is not a workload.
func endpointFromObject(o *resource.Object) *Endpoint {
	var (
		meta corev1.PodTemplateSpec
		ips  []string
	)
	switch obj := o.Obj.(type) {
	case *corev1.Pod:
		meta = corev1.PodTemplateSpec{ObjectMeta: obj.ObjectMeta, Spec: obj.Spec}
		for _, ip := range obj.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		if obj.Status.PodIP != "" && !slices.Contains(ips, obj.Status.PodIP) {
			ips = append([]string{obj.Status.PodIP}, ips...)
		}
	case *appsv1.Deployment:
		meta = obj.Spec.Template
	case *appsv1.StatefulSet:
		meta = obj.Spec.Template
	case *appsv1.DaemonSet:
		meta = obj.Spec.Template
	case *appsv1.ReplicaSet:
		meta = obj.Spec.Template
	case *batchv1.Job:
		meta = obj.Spec.Template
	case *batchv1.CronJob:
		meta = obj.Spec.JobTemplate.Spec.Template
	default:
		return nil
	}
	e := &Endpoint{
		Kind:           o.Kind,
		Namespace:      o.Namespace,
		Name:           o.Name,
		Labels:         meta.Labels,
		ServiceAccount: meta.Spec.ServiceAccountName,
		NamedPorts:     map[string]NamedPort{},
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			e.IPs = append(e.IPs, a)
		}
	}
	for _, c := range append(slices.Clone(meta.Spec.InitContainers), meta.Spec.Containers...) {
		for _, p := range c.Ports {
			np := NamedPort{Port: uint16(p.ContainerPort), Proto: protoOf(p.Protocol)}
			e.Ports = append(e.Ports, np)
			if p.Name != "" {
				e.NamedPorts[p.Name] = np
			}
		}
	}
	return e
}

func protoOf(p corev1.Protocol) Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return UDP
	case corev1.ProtocolSCTP:
		return SCTP
	}
	return TCP
}
