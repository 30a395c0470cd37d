// Package identity assigns numeric security identities to label sets.
//
// Like Cilium, Rampart enforces policy on identities rather than addresses:
// every distinct set of security-relevant labels (a pod's labels, its
// namespace and the namespace's labels, its service account, its cluster)
// gets one number, and the datapath maps addresses to those numbers. A few
// identities are reserved for peers that are not workloads (the host, the
// world outside the cluster, ...), with Cilium's numbers so that flow logs
// read the same to Cilium users.
package identity

import (
	"fmt"
	"net/netip"

	"github.com/rampartsec/rampart/internal/labels"
)

// ID is a numeric security identity.
type ID uint32

// Reserved identities, numbered as in Cilium.
const (
	Unknown       ID = 0
	Host          ID = 1
	World         ID = 2
	Unmanaged     ID = 3
	Health        ID = 4
	Init          ID = 5
	RemoteNode    ID = 6
	KubeAPIServer ID = 7
	Ingress       ID = 8

	// MinLocal is the first identity allocated to workload label sets.
	MinLocal ID = 256
	// MinCIDR is the first identity allocated to CIDR prefixes. Identities at
	// and above it are node-local and never shared across a cluster.
	MinCIDR ID = 1 << 24
)

// Identity is an ID with the labels it stands for.
type Identity struct {
	ID     ID
	Labels labels.Set
}

func (i *Identity) String() string { return fmt.Sprintf("%d", i.ID) }

// IsReserved reports whether the identity is one of the reserved ones.
func (i *Identity) IsReserved() bool { return i.ID < MinLocal }

// IsWorld reports whether the identity stands for a peer outside the
// cluster: world itself or a CIDR identity. Cilium's CIDR rules match only
// such peers.
func (i *Identity) IsWorld() bool { return i.Labels.Has(labels.ReservedPrefix + "world") }

var reservedNames = map[ID]string{
	Host: "host", World: "world", Unmanaged: "unmanaged", Health: "health",
	Init: "init", RemoteNode: "remote-node", KubeAPIServer: "kube-apiserver", Ingress: "ingress",
}

// reserved holds the reserved identities, built once.
var reserved = func() map[ID]*Identity {
	m := make(map[ID]*Identity, len(reservedNames))
	for id, name := range reservedNames {
		m[id] = &Identity{ID: id, Labels: labels.New(map[string]string{labels.ReservedPrefix + name: ""})}
	}
	return m
}()

// Reserved returns the reserved identity id, or nil if id is not reserved.
func Reserved(id ID) *Identity { return reserved[id] }

// ReservedByName returns the reserved identity called name ("host",
// "world", ...).
func ReservedByName(name string) (*Identity, bool) {
	for id, n := range reservedNames {
		if n == name {
			return reserved[id], true
		}
	}
	return nil, false
}

// ReservedName returns the name of a reserved identity, or "".
func ReservedName(id ID) string { return reservedNames[id] }

// AllReserved returns every reserved identity in ID order.
func AllReserved() []*Identity {
	out := make([]*Identity, 0, len(reserved))
	for id := Host; id <= Ingress; id++ {
		out = append(out, reserved[id])
	}
	return out
}

// CIDRLabels returns the labels of the CIDR identity of prefix: the prefix
// itself and reserved:world, so that the world entity selects it.
func CIDRLabels(p netip.Prefix) labels.Set {
	return labels.New(map[string]string{labels.CIDRPrefix + p.Masked().String(): "", labels.ReservedPrefix + "world": ""})
}
