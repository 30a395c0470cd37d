package identity

import (
	"maps"

	"github.com/rampartsec/rampart/internal/labels"
)

// DefaultCluster is the cluster name endpoints carry when none is set.
const DefaultCluster = "default"

// EndpointMeta is what decides an endpoint's identity.
type EndpointMeta struct {
	Labels          map[string]string // the pod's own labels
	Namespace       string
	NamespaceLabels map[string]string // labels of the Namespace object, if any
	ServiceAccount  string            // "" means "default"
	Cluster         string            // "" means DefaultCluster
}

// EndpointLabels returns the security label set of an endpoint: its own
// labels plus the derived namespace, namespace-label, service-account and
// cluster labels. The namespace always carries kubernetes.io/metadata.name,
// as Kubernetes sets it on every namespace.
func EndpointLabels(m EndpointMeta) labels.Set {
	out := maps.Clone(m.Labels)
	if out == nil {
		out = map[string]string{}
	}
	out[labels.NamespaceKey] = m.Namespace
	for k, v := range m.NamespaceLabels {
		out[labels.NamespaceLabelPrefix+k] = v
	}
	out[labels.NamespaceLabelPrefix+labels.NamespaceNameLabel] = m.Namespace
	sa := m.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	out[labels.ServiceAccountKey] = sa
	cluster := m.Cluster
	if cluster == "" {
		cluster = DefaultCluster
	}
	out[labels.ClusterKey] = cluster
	return labels.New(out)
}
