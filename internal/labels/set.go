package labels

import (
	"maps"
	"slices"
	"strings"
)

// Keys that Rampart derives for every endpoint. They follow Cilium's names so
// that selectors written for Cilium (for example on
// k8s:io.kubernetes.pod.namespace) select the same endpoints here.
const (
	// NamespaceKey carries the endpoint's namespace name.
	NamespaceKey = "io.kubernetes.pod.namespace"
	// NamespaceLabelPrefix prefixes each label of the endpoint's namespace.
	NamespaceLabelPrefix = "io.cilium.k8s.namespace.labels."
	// ServiceAccountKey carries the endpoint's service account name.
	ServiceAccountKey = "io.cilium.k8s.policy.serviceaccount"
	// ClusterKey carries the name of the cluster the endpoint belongs to.
	ClusterKey = "io.cilium.k8s.policy.cluster"
	// NamespaceNameLabel is the label Kubernetes puts on every namespace
	// (since 1.21); NetworkPolicy namespaceSelectors commonly match on it.
	NamespaceNameLabel = "kubernetes.io/metadata.name"
	// ReservedPrefix marks the labels of reserved identities, for example
	// "reserved:host".
	ReservedPrefix = "reserved:"
	// CIDRPrefix marks the labels of CIDR identities, for example
	// "cidr:10.0.0.0/8".
	CIDRPrefix = "cidr:"
)

// Set is an immutable set of labels. The zero Set is empty. Sets are compared
// and deduplicated through their canonical [Set.String] form.
type Set struct {
	m   map[string]string
	key string
}

// New returns a Set holding a copy of m.
func New(m map[string]string) Set {
	c := maps.Clone(m)
	if c == nil {
		c = map[string]string{}
	}
	return Set{m: c, key: canonical(c)}
}

func canonical(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		if v := m[k]; v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// Get returns the value of key and whether the set has it.
func (s Set) Get(key string) (string, bool) {
	v, ok := s.m[key]
	return v, ok
}

// Has reports whether the set has key, whatever its value.
func (s Set) Has(key string) bool {
	_, ok := s.m[key]
	return ok
}

// Len returns the number of labels.
func (s Set) Len() int { return len(s.m) }

// Map returns a copy of the labels.
func (s Set) Map() map[string]string { return maps.Clone(s.m) }

// String returns the canonical form "k1=v1,k2=v2" with keys sorted; two sets
// are equal exactly when their String forms are.
func (s Set) String() string { return s.key }

// Sorted returns the labels as "key=value" strings in key order.
func (s Set) Sorted() []string {
	keys := slices.Sorted(maps.Keys(s.m))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + s.m[k]
	}
	return out
}
