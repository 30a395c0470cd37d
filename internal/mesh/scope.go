package mesh

import (
	"fmt"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// PolicyRef names a policy as "namespace/name", the form every trace and
// reason uses.
type PolicyRef struct {
	Namespace string
	Name      string
}

func (r PolicyRef) String() string { return r.Namespace + "/" + r.Name }

// TargetRef is a policy's targetRef: the object it attaches to instead of
// a workload selector.
type TargetRef struct {
	Group     string
	Kind      string
	Namespace string
	Name      string
}

func (r TargetRef) String() string {
	g := r.Group
	if g == "" {
		g = "core"
	}
	return r.Kind + "." + g + " " + r.Namespace + "/" + r.Name
}

// TargetResolver resolves a Service or ServiceEntry targetRef to the labels
// that select the workloads behind it (the Service's spec.selector, the
// ServiceEntry's workloadSelector). It reports false when the object does
// not exist. The offline trace builds one from its input objects and the
// node from its store.
type TargetResolver interface {
	ResolveTarget(ref TargetRef) (selector map[string]string, ok bool)
}

// TargetResolverFunc adapts a function to TargetResolver.
type TargetResolverFunc func(TargetRef) (map[string]string, bool)

// ResolveTarget calls f.
func (f TargetResolverFunc) ResolveTarget(ref TargetRef) (map[string]string, bool) { return f(ref) }

// GatewayNameLabel is the label Istio puts on the pods of a Gateway API
// gateway it deploys; a Gateway targetRef selects the workloads carrying it.
const GatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

const (
	groupGatewayAPI   = "gateway.networking.k8s.io"
	groupIstioNetwork = "networking.istio.io"
)

// scope is where a policy applies: its namespace (or the whole mesh from
// the root namespace), narrowed by a selector or replaced by targetRefs.
type scope struct {
	namespace  string
	selector   map[string]string // empty: every workload in scope
	useTargets bool
	targets    []target
}

// target is one resolved targetRef. A target whose selector is empty
// applies to nothing, and unbound says why.
type target struct {
	ref      TargetRef
	selector map[string]string
	unbound  string
}

// applies reports whether the policy applies to w and, when it does not,
// why: traces list the policies that were skipped with the reason.
func (s *scope) applies(w *Workload, root string) (bool, string) {
	if s.useTargets {
		if w.Namespace != s.namespace {
			return false, "targetRef in namespace " + s.namespace
		}
		var why []string
		for _, t := range s.targets {
			if t.unbound != "" {
				why = append(why, t.unbound)
				continue
			}
			if subsetOf(t.selector, w.Labels) {
				return true, ""
			}
			why = append(why, fmt.Sprintf("%s selects %s", t.ref, formatLabels(t.selector)))
		}
		return false, strings.Join(why, "; ")
	}
	if w.Namespace != s.namespace && s.namespace != root {
		return false, "namespace " + s.namespace
	}
	if !subsetOf(s.selector, w.Labels) {
		return false, "selector " + formatLabels(s.selector)
	}
	return true, ""
}

// describe renders the scope for traces.
func (s *scope) describe(root string) string {
	var where string
	if s.namespace == root {
		where = "mesh-wide (root namespace " + root + ")"
	} else {
		where = "namespace " + s.namespace
	}
	switch {
	case s.useTargets:
		refs := make([]string, len(s.targets))
		for i, t := range s.targets {
			refs[i] = t.ref.String()
		}
		return "targetRef " + strings.Join(refs, ", ")
	case len(s.selector) > 0:
		return where + ", selector " + formatLabels(s.selector)
	default:
		return where
	}
}

// buildScope compiles a policy's selector and targetRefs. Kinds Rampart
// cannot map to workloads are errors; a reference it can map but cannot
// find binds to nothing (as an unresolved targetRef does in Istio) and
// yields a warning so the user learns why the policy is inert.
func buildScope(o *resource.Object, sel *resource.WorkloadSelector, one *resource.PolicyTargetRef, many []resource.PolicyTargetRef, res TargetResolver) (scope, []string, resource.ErrorList) {
	s := scope{namespace: o.Namespace}
	if sel != nil && len(sel.MatchLabels) > 0 {
		s.selector = sel.MatchLabels
	}
	refs, path := many, "spec.targetRefs"
	if one != nil {
		refs, path = []resource.PolicyTargetRef{*one}, "spec.targetRef"
	}
	if len(refs) == 0 {
		return s, nil, nil
	}
	s.useTargets = true
	var (
		warns []string
		errs  resource.ErrorList
	)
	for i, r := range refs {
		p := path
		if one == nil {
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		ns := r.Namespace
		if ns == "" {
			ns = o.Namespace
		}
		ref := TargetRef{Group: r.Group, Kind: r.Kind, Namespace: ns, Name: r.Name}
		t := target{ref: ref}
		switch {
		case r.Kind == "Gateway" && r.Group == groupGatewayAPI:
			t.selector = map[string]string{GatewayNameLabel: r.Name}
		case (r.Kind == "Service" && (r.Group == "" || r.Group == "core")) || (r.Kind == "ServiceEntry" && r.Group == groupIstioNetwork):
			if res == nil {
				t.unbound = ref.String() + " cannot be resolved: no Service resolver was configured"
				break
			}
			labels, ok := res.ResolveTarget(ref)
			switch {
			case !ok:
				t.unbound = ref.String() + " not found"
			case len(labels) == 0:
				t.unbound = ref.String() + " has no selector, so it selects no workloads"
			default:
				t.selector = labels
			}
		default:
			errs = append(errs, o.Errorf(p, "%v", &UnsupportedError{What: "targetRef to " + ref.String(), Why: "Rampart attaches policies to Gateway (gateway.networking.k8s.io), Service and ServiceEntry (networking.istio.io)"}))
			continue
		}
		if t.unbound != "" {
			warns = append(warns, fmt.Sprintf("%s: %s: %s; the policy applies to no workload through it", o.Ref(), p, t.unbound))
		}
		s.targets = append(s.targets, t)
	}
	return s, warns, errs
}
