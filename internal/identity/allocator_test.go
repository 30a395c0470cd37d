package identity_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/labels"
)

func TestLocalAllocator(t *testing.T) {
	ctx := context.Background()
	a := identity.NewLocal()
	web := identity.EndpointLabels(identity.EndpointMeta{Labels: map[string]string{"app": "web"}, Namespace: "prod"})
	db := identity.EndpointLabels(identity.EndpointMeta{Labels: map[string]string{"app": "db"}, Namespace: "prod"})
	w1, _ := a.Allocate(ctx, web)
	d1, _ := a.Allocate(ctx, db)
	w2, _ := a.Allocate(ctx, labels.New(web.Map()))
	if w1.ID != identity.MinLocal || d1.ID != identity.MinLocal+1 {
		t.Fatalf("ids = %d, %d; want sequential from %d", w1.ID, d1.ID, identity.MinLocal)
	}
	if w2 != w1 {
		t.Fatalf("same labels got a new identity %d", w2.ID)
	}
	if got, ok := a.Lookup(ctx, d1.ID); !ok || got != d1 {
		t.Fatalf("Lookup(%d) = %v, %v", d1.ID, got, ok)
	}
	if got, ok := a.Lookup(ctx, identity.Host); !ok || !got.Labels.Has("reserved:host") {
		t.Fatalf("Lookup(host) = %v, %v", got, ok)
	}
	c, _ := a.AllocateCIDR(ctx, netip.MustParsePrefix("10.0.0.0/8"))
	if c.ID != identity.MinCIDR || !c.IsWorld() {
		t.Fatalf("CIDR identity = %d world=%v, want %d and world", c.ID, c.IsWorld(), identity.MinCIDR)
	}
}

func TestEndpointLabels(t *testing.T) {
	l := identity.EndpointLabels(identity.EndpointMeta{
		Labels: map[string]string{"app": "web"}, Namespace: "prod",
		NamespaceLabels: map[string]string{"team": "a"},
	})
	for k, want := range map[string]string{
		"app":                                 "web",
		labels.NamespaceKey:                   "prod",
		"io.cilium.k8s.namespace.labels.team": "a",
		"io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "prod",
		labels.ServiceAccountKey:                                     "default",
		labels.ClusterKey:                                            "default",
	} {
		if got, ok := l.Get(k); !ok || got != want {
			t.Errorf("label %s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if identity.Reserved(identity.World).IsReserved() != true || identity.Reserved(identity.World).IsWorld() != true {
		t.Error("world is not reserved world")
	}
}
