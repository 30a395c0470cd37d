package store_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/labels"
	"github.com/rampartsec/rampart/internal/store"
)

func workload(app string) labels.Set {
	return identity.EndpointLabels(identity.EndpointMeta{Labels: map[string]string{"app": app}, Namespace: "prod"})
}

func TestIdentityAllocator(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		a := store.NewIdentityAllocator(s)
		web, err := a.Allocate(ctx, workload("web"))
		if err != nil {
			t.Fatal(err)
		}
		db, _ := a.Allocate(ctx, workload("db"))
		if web.ID != identity.MinLocal || db.ID != identity.MinLocal+1 {
			t.Fatalf("ids %d, %d; want %d and %d", web.ID, db.ID, identity.MinLocal, identity.MinLocal+1)
		}
		if again, _ := a.Allocate(ctx, labels.New(workload("web").Map())); again.ID != web.ID {
			t.Fatalf("same labels got %d, want %d", again.ID, web.ID)
		}
		cidr, err := a.AllocateCIDR(ctx, netip.MustParsePrefix("10.0.0.0/8"))
		if err != nil || cidr.ID != identity.MinCIDR || !cidr.IsWorld() {
			t.Fatalf("CIDR identity %v, %v; want %d and world", cidr, err, identity.MinCIDR)
		}
		cidr2, _ := a.AllocateCIDR(ctx, netip.MustParsePrefix("10.1.2.3/8")) // same prefix once masked
		if cidr2.ID != cidr.ID {
			t.Fatalf("10.1.2.3/8 got %d, want %d", cidr2.ID, cidr.ID)
		}
		if h, ok := a.Lookup(ctx, identity.Host); !ok || !h.Labels.Has("reserved:host") {
			t.Fatalf("Lookup(host) = %v, %v", h, ok)
		}
		if _, ok := a.Lookup(ctx, identity.MinLocal+100); ok {
			t.Fatal("Lookup of an unallocated ID succeeded")
		}

		// A second allocator on the same store (another agent) agrees, and
		// looks up IDs it never allocated.
		b := store.NewIdentityAllocator(s)
		if got, ok := b.Lookup(ctx, db.ID); !ok || got.Labels.String() != db.Labels.String() {
			t.Fatalf("other allocator Lookup(%d) = %v, %v; want %s", db.ID, got, ok, db.Labels)
		}
		if got, _ := b.Allocate(ctx, workload("web")); got.ID != web.ID {
			t.Fatalf("other allocator gave web %d, want %d", got.ID, web.ID)
		}
		if got, _ := b.Allocate(ctx, workload("new")); got.ID != identity.MinLocal+2 {
			t.Fatalf("other allocator's first new ID %d, want %d", got.ID, identity.MinLocal+2)
		}
		if got, ok := a.Lookup(ctx, identity.MinLocal+2); !ok || got.Labels.String() != workload("new").String() {
			t.Fatalf("first allocator Lookup of the other's ID = %v, %v", got, ok)
		}
	})
}

// TestIdentityRace has goroutines on two allocators over one store allocate
// overlapping label sets at once: every label set must end with one ID, and
// no ID may serve two label sets.
func TestIdentityRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		const (
			sets       = 20
			goroutines = 8 // per allocator
		)
		allocs := []*store.IdentityAllocator{store.NewIdentityAllocator(s), store.NewIdentityAllocator(s)}
		type result struct {
			set string
			id  identity.ID
		}
		results := make(chan result, 2*goroutines*sets)
		var wg sync.WaitGroup
		errs := make(chan error, 2*goroutines)
		for ai, a := range allocs {
			for g := range goroutines {
				wg.Go(func() {
					for i := range sets {
						// Each goroutine walks the sets from a different
						// start, so that races happen on every set.
						n := (i + g*3 + ai) % sets
						app := fmt.Sprintf("app-%d", n)
						var (
							id  *identity.Identity
							err error
						)
						if n%5 == 0 {
							id, err = a.AllocateCIDR(ctx, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(n), 0, 0}), 16))
							app = "cidr-" + app
						} else {
							id, err = a.Allocate(ctx, workload(app))
						}
						if err != nil {
							errs <- err
							return
						}
						results <- result{app, id.ID}
					}
				})
			}
		}
		wg.Wait()
		close(results)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		idOf := map[string]identity.ID{}
		setOf := map[identity.ID]string{}
		for r := range results {
			if prev, ok := idOf[r.set]; ok && prev != r.id {
				t.Errorf("%s got two IDs: %d and %d", r.set, prev, r.id)
			}
			if prev, ok := setOf[r.id]; ok && prev != r.set {
				t.Errorf("ID %d serves %s and %s", r.id, prev, r.set)
			}
			idOf[r.set], setOf[r.id] = r.id, r.set
		}
		if len(idOf) != sets {
			t.Fatalf("%d label sets allocated, want %d", len(idOf), sets)
		}
		// IDs are dense: the counter moved once per label set.
		var local, cidr int
		for id := range setOf {
			switch {
			case id >= identity.MinLocal && id < identity.MinLocal+sets:
				local++
			case id >= identity.MinCIDR && id < identity.MinCIDR+sets:
				cidr++
			default:
				t.Errorf("ID %d out of the expected ranges", id)
			}
		}
		if local != sets-sets/5 || cidr != sets/5 {
			t.Errorf("%d workload and %d CIDR IDs, want %d and %d", local, cidr, sets-sets/5, sets/5)
		}
	})
}

// TestIdentitySkipsTakenID checks that an ID already taken, although the
// counter says it is free (a counter restored from an old backup, say), is
// skipped rather than handed out twice.
func TestIdentitySkipsTakenID(t *testing.T) {
	s := mustEmbedded(t)
	ctx := context.Background()
	a := store.NewIdentityAllocator(s)
	first, err := a.Allocate(ctx, workload("first"))
	if err != nil {
		t.Fatal(err)
	}
	// Roll the counter back.
	mustApply(t, s, []store.KV{put(store.IdentityPrefix+"next/local", fmt.Sprint(first.ID))}, nil)
	second, err := store.NewIdentityAllocator(s).Allocate(ctx, workload("second"))
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID {
		t.Fatalf("ID %d handed out twice", first.ID)
	}
}
