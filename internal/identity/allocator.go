package identity

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/rampartsec/rampart/internal/labels"
)

// Allocator hands out identities for label sets. The same label set always
// gets the same identity from one allocator. The local allocator below
// serves offline tools and tests; the node's store-backed allocator
// implements the same interface so that identities agree across processes.
type Allocator interface {
	// Allocate returns the identity of lbls, creating it if needed.
	Allocate(ctx context.Context, lbls labels.Set) (*Identity, error)
	// AllocateCIDR returns the CIDR identity of prefix, creating it if
	// needed.
	AllocateCIDR(ctx context.Context, prefix netip.Prefix) (*Identity, error)
	// Lookup returns the identity id, reserved ones included.
	Lookup(ctx context.Context, id ID) (*Identity, bool)
}

// Local is an in-memory Allocator that numbers label sets in the order they
// are first allocated, from MinLocal, and CIDRs from MinCIDR. Callers that
// need the same numbers from the same input regardless of input order
// allocate in a sorted order, as the policy repository does.
type Local struct {
	mu       sync.Mutex
	byLabels map[string]*Identity
	byID     map[ID]*Identity
	next     ID
	nextCIDR ID
}

var _ Allocator = (*Local)(nil)

// NewLocal returns an empty local allocator.
func NewLocal() *Local {
	return &Local{byLabels: map[string]*Identity{}, byID: map[ID]*Identity{}, next: MinLocal, nextCIDR: MinCIDR}
}

// Allocate implements Allocator.
func (a *Local) Allocate(_ context.Context, lbls labels.Set) (*Identity, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.byLabels[lbls.String()]; ok {
		return id, nil
	}
	if a.next >= MinCIDR {
		return nil, fmt.Errorf("allocate identity: all %d local identities are in use", MinCIDR-MinLocal)
	}
	id := &Identity{ID: a.next, Labels: lbls}
	a.next++
	a.byLabels[lbls.String()] = id
	a.byID[id.ID] = id
	return id, nil
}

// AllocateCIDR implements Allocator.
func (a *Local) AllocateCIDR(_ context.Context, prefix netip.Prefix) (*Identity, error) {
	lbls := CIDRLabels(prefix)
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.byLabels[lbls.String()]; ok {
		return id, nil
	}
	id := &Identity{ID: a.nextCIDR, Labels: lbls}
	a.nextCIDR++
	a.byLabels[lbls.String()] = id
	a.byID[id.ID] = id
	return id, nil
}

// Lookup implements Allocator.
func (a *Local) Lookup(_ context.Context, id ID) (*Identity, bool) {
	if r := Reserved(id); r != nil {
		return r, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.byID[id]
	return i, ok
}
