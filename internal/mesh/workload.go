package mesh

import (
	"maps"
	"slices"
	"strings"
)

// DefaultRootNamespace is Istio's default root namespace: policies there
// apply to the whole mesh.
const DefaultRootNamespace = "istio-system"

// Workload describes the workload a proxy protects: the destination of the
// connections and requests it authorizes. Policies select it by namespace
// and labels; the service account is carried for traces, since Istio's
// policies never select the destination by it.
type Workload struct {
	Namespace      string
	Labels         map[string]string
	ServiceAccount string
}

// String renders the workload for traces: "ns (app=a, v=1), sa default".
func (w Workload) String() string {
	var b strings.Builder
	b.WriteString(w.Namespace)
	b.WriteString(" (")
	b.WriteString(formatLabels(w.Labels))
	b.WriteString(")")
	if w.ServiceAccount != "" {
		b.WriteString(", service account ")
		b.WriteString(w.ServiceAccount)
	}
	return b.String()
}

// subsetOf reports whether every label of sel is on the workload, as
// Istio's WorkloadSelector.matchLabels requires.
func subsetOf(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func formatLabels(m map[string]string) string {
	if len(m) == 0 {
		return "no labels"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}
