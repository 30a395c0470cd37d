package main

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/rampartsec/rampart/internal/resource"
)

// baseline is the straightforward way to find what applies to each pod, as
// controllers that program iptables per pod do: match every policy's
// selector (with Kubernetes' own label library) against every pod. It
// returns the number of (pod, policy) matches so the work is not optimised
// away.
func baseline(objs []*resource.Object) int {
	type pol struct {
		ns  string
		sel k8slabels.Selector
	}
	var (
		pols []pol
		pods []*corev1.Pod
	)
	for _, o := range objs {
		var ls *metav1.LabelSelector
		switch obj := o.Obj.(type) {
		case *corev1.Pod:
			pods = append(pods, obj)
			continue
		case *networkingv1.NetworkPolicy:
			ls = &obj.Spec.PodSelector
		case *resource.CiliumNetworkPolicy:
			for _, r := range obj.Rules() {
				ls = r.EndpointSelector
			}
		default:
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			continue
		}
		pols = append(pols, pol{ns: o.Namespace, sel: sel})
	}
	n := 0
	for _, p := range pods {
		set := k8slabels.Set(p.Labels)
		for _, pl := range pols {
			if (pl.ns == "" || pl.ns == p.Namespace) && pl.sel.Matches(set) {
				n++
			}
		}
	}
	return n
}

// policyYAML returns an object's manifest, to be edited and decoded again.
func policyYAML(o *resource.Object) string {
	data, err := yaml.Marshal(o.Obj)
	if err != nil {
		panic(err)
	}
	return string(data)
}
