package posture

import (
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rampartsec/rampart/internal/labels"
	"github.com/rampartsec/rampart/internal/resource"
)

// Inventory indexes the audited objects so that checks can answer
// cross-object questions (which policies select this workload, what does its
// service account say, is its namespace in the mesh) without rescanning.
type Inventory struct {
	Objects   []*resource.Object
	Workloads []*Workload

	namespaces      map[string]*resource.Object
	serviceAccounts map[string]*corev1.ServiceAccount // "ns/name"
	services        []*resource.Object
	netpols         []*resource.Object
	ciliumPolicies  []*resource.Object
	coverage        map[*Workload]Coverage
	owned           map[*resource.Object]bool
}

// NewInventory indexes objs. Workloads whose controller is also among objs
// (a ReplicaSet owned by a listed Deployment, a cluster's Pods owned by
// listed ReplicaSets) are left out of Workloads, so that one misconfigured
// template yields one set of findings rather than one per generation. The
// exception is a ReplicaSet that may run pods (replicas not 0) from a
// template its Deployment does not hold: whoever may update ReplicaSets can
// change what runs without touching the Deployment, so it is audited on its
// own (see driftedReplicaSet).
func NewInventory(objs []*resource.Object) *Inventory {
	inv := &Inventory{
		Objects:         objs,
		namespaces:      map[string]*resource.Object{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		coverage:        map[*Workload]Coverage{},
		owned:           map[*resource.Object]bool{},
	}
	byUID := map[string]*resource.Object{}
	byName := map[string]*resource.Object{}
	for _, o := range objs {
		if m, ok := o.Obj.(metav1.Object); ok && m.GetUID() != "" {
			byUID[string(m.GetUID())] = o
		}
		byName[o.Kind+"/"+o.Namespace+"/"+o.Name] = o
		switch t := o.Obj.(type) {
		case *corev1.Namespace:
			inv.namespaces[o.Name] = o
		case *corev1.ServiceAccount:
			inv.serviceAccounts[o.Namespace+"/"+o.Name] = t
		case *corev1.Service:
			inv.services = append(inv.services, o)
		case *networkingv1.NetworkPolicy:
			inv.netpols = append(inv.netpols, o)
		case *resource.CiliumNetworkPolicy:
			inv.ciliumPolicies = append(inv.ciliumPolicies, o)
		}
	}
	for _, o := range objs {
		w, ok := NewWorkload(o)
		if !ok {
			continue
		}
		if m, ok := o.Obj.(metav1.Object); ok {
			for _, ref := range m.GetOwnerReferences() {
				if ref.Controller == nil || !*ref.Controller {
					continue
				}
				owner := byUID[string(ref.UID)]
				if owner == nil {
					owner = byName[ref.Kind+"/"+o.Namespace+"/"+ref.Name]
				}
				if owner != nil && !driftedReplicaSet(o, owner) {
					inv.owned[o] = true
				}
			}
		}
		if inv.owned[o] {
			continue
		}
		inv.Workloads = append(inv.Workloads, w)
		inv.coverage[w] = inv.computeCoverage(w)
	}
	return inv
}

// Namespace returns the Namespace object named ns, if the input has it.
func (inv *Inventory) Namespace(ns string) (*corev1.Namespace, bool) {
	o, ok := inv.namespaces[ns]
	if !ok {
		return nil, false
	}
	return o.Obj.(*corev1.Namespace), true
}

// ServiceAccount returns the ServiceAccount ns/name, if the input has it.
func (inv *Inventory) ServiceAccount(ns, name string) (*corev1.ServiceAccount, bool) {
	sa, ok := inv.serviceAccounts[ns+"/"+name]
	return sa, ok
}

// Services returns the Services in w's namespace whose selector selects w's
// pods, sorted by name.
func (inv *Inventory) Services(w *Workload) []string {
	var out []string
	set := labels.New(w.Meta.Labels)
	for _, o := range inv.services {
		s := o.Obj.(*corev1.Service)
		if o.Namespace != w.Object.Namespace || len(s.Spec.Selector) == 0 {
			continue
		}
		if labels.NewSelector(requirementsOf(s.Spec.Selector)...).Matches(set) {
			out = append(out, o.Name)
		}
	}
	slices.Sort(out)
	return out
}

func requirementsOf(m map[string]string) []labels.Requirement {
	var reqs []labels.Requirement
	for _, k := range slices.Sorted(maps.Keys(m)) {
		reqs = append(reqs, labels.Requirement{Key: k, Op: labels.In, Values: []string{m[k]}})
	}
	return reqs
}

// PolicyCount returns how many NetworkPolicies and namespaced Cilium
// policies live in ns.
func (inv *Inventory) PolicyCount(ns string) int {
	n := 0
	for _, o := range inv.netpols {
		if o.Namespace == ns {
			n++
		}
	}
	for _, o := range inv.ciliumPolicies {
		if o.Namespace == ns {
			n++
		}
	}
	return n
}

// Coverage says which directions of a workload's traffic some network policy
// restricts, and which policies select it.
type Coverage struct {
	Ingress, Egress bool
	Policies        []string // refs of the selecting policies, sorted
}

// Selected reports whether any policy selects the workload.
func (c Coverage) Selected() bool { return len(c.Policies) > 0 }

// Coverage returns the network policy coverage of w.
func (inv *Inventory) Coverage(w *Workload) Coverage { return inv.coverage[w] }

func (inv *Inventory) computeCoverage(w *Workload) Coverage {
	var c Coverage
	ns := w.Object.Namespace
	podSet := labels.New(w.Meta.Labels)
	for _, o := range inv.netpols {
		np := o.Obj.(*networkingv1.NetworkPolicy)
		if o.Namespace != ns {
			continue
		}
		sel, err := labels.FromLabelSelector(&np.Spec.PodSelector, nil)
		if err != nil || !sel.Matches(podSet) {
			continue
		}
		c.Policies = append(c.Policies, o.Ref())
		types := np.Spec.PolicyTypes
		if len(types) == 0 {
			// As the API server defaults it: Ingress always, Egress when
			// the policy has egress rules.
			types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			if len(np.Spec.Egress) > 0 {
				types = append(types, networkingv1.PolicyTypeEgress)
			}
		}
		for _, t := range types {
			switch t {
			case networkingv1.PolicyTypeIngress:
				c.Ingress = true
			case networkingv1.PolicyTypeEgress:
				c.Egress = true
			}
		}
	}
	ciliumSet := inv.ciliumLabels(w)
	for _, o := range inv.ciliumPolicies {
		if o.Kind == "CiliumNetworkPolicy" && o.Namespace != ns {
			continue
		}
		cnp := o.Obj.(*resource.CiliumNetworkPolicy)
		selected := false
		for _, r := range cnp.Rules() {
			if r.EndpointSelector == nil {
				continue // a host policy (nodeSelector) does not apply to pods
			}
			sel, err := labels.FromLabelSelector(r.EndpointSelector, labels.CiliumKey)
			if err != nil || !sel.Matches(ciliumSet) {
				continue
			}
			selected = true
			in, eg := len(r.Ingress)+len(r.IngressDeny) > 0, len(r.Egress)+len(r.EgressDeny) > 0
			if d := r.EnableDefaultDeny; d != nil {
				if d.Ingress != nil {
					in = *d.Ingress
				}
				if d.Egress != nil {
					eg = *d.Egress
				}
			}
			c.Ingress = c.Ingress || in
			c.Egress = c.Egress || eg
		}
		if selected {
			c.Policies = append(c.Policies, o.Ref())
		}
	}
	slices.Sort(c.Policies)
	return c
}

// ciliumLabels returns the labels Cilium gives w's endpoints: the pod
// labels, the namespace name, the namespace's labels and the service
// account, under the keys package labels defines.
func (inv *Inventory) ciliumLabels(w *Workload) labels.Set {
	m := map[string]string{}
	maps.Copy(m, w.Meta.Labels)
	m[labels.NamespaceKey] = w.Object.Namespace
	m[labels.ServiceAccountKey] = w.ServiceAccount()
	nsLabels := map[string]string{labels.NamespaceNameLabel: w.Object.Namespace}
	if ns, ok := inv.Namespace(w.Object.Namespace); ok {
		maps.Copy(nsLabels, ns.Labels)
	}
	for k, v := range nsLabels {
		m[labels.NamespaceLabelKey(k)] = v
	}
	return labels.New(m)
}

// MeshEnabled reports whether ns carries the label rampart.io/mesh=enabled.
// A namespace absent from the input is taken as not in the mesh, since
// nothing shows that it is.
func (inv *Inventory) MeshEnabled(ns string) bool {
	n, ok := inv.Namespace(ns)
	return ok && n.Labels[MeshLabel] == "enabled"
}

// MeshLabel is the namespace label that puts a namespace's workloads in
// Rampart's mTLS mesh.
const MeshLabel = "rampart.io/mesh"

// driftedReplicaSet reports whether o is a ReplicaSet that may run pods
// (replicas unset or above 0) from a pod template other than that of its
// owner, a Deployment. The Deployment controller copies its template into
// each ReplicaSet and adds only the pod-template-hash label, which the
// comparison ignores. ReplicaSets scaled to 0 are the Deployment's rollout
// history: their old templates run nothing and are not reported.
func driftedReplicaSet(o, owner *resource.Object) bool {
	rs, ok := o.Obj.(*appsv1.ReplicaSet)
	if !ok {
		return false
	}
	d, ok := owner.Obj.(*appsv1.Deployment)
	if !ok || (rs.Spec.Replicas != nil && *rs.Spec.Replicas == 0) {
		return false
	}
	tmpl := rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	if len(tmpl.Labels) == 0 {
		tmpl.Labels = nil
	}
	want := d.Spec.Template.DeepCopy()
	if len(want.Labels) == 0 {
		want.Labels = nil
	}
	return !equality.Semantic.DeepEqual(tmpl, want)
}
