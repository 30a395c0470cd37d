package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/labels"
)

// IdentityPrefix is the prefix of the identity allocator's keys:
//
//	/rampart/v1/identities/labels/<canonical label set>  -> decimal ID
//	/rampart/v1/identities/id/<decimal ID>                -> {"labels":{...}}
//	/rampart/v1/identities/next/local                     -> next free workload ID
//	/rampart/v1/identities/next/cidr                      -> next free CIDR ID
//
// The canonical label set is labels.Set.String. Both directions are written
// in the transaction that allocates, so they always agree.
const IdentityPrefix = "/rampart/v1/identities/"

const (
	identityLabelsPrefix = IdentityPrefix + "labels/"
	identityIDPrefix     = IdentityPrefix + "id/"
	nextLocalKey         = IdentityPrefix + "next/local"
	nextCIDRKey          = IdentityPrefix + "next/cidr"
)

// maxAllocateAttempts bounds the compare-and-swap retries of one allocation.
// Each failed attempt means another allocator won a race and moved the
// counter, so running out takes that many concurrent winners in a row.
const maxAllocateAttempts = 1000

// IdentityAllocator is an identity.Allocator whose numbers live in a Store,
// so that every agent and control plane sharing the store gets the same ID
// for the same label set, and no two label sets share an ID.
//
// An allocation reads the label set's key and, if it is missing, claims the
// next number with one transaction that holds only if the label set is still
// unallocated, the counter is unchanged and the number is unused. Of two
// allocators racing for one label set, one transaction wins and the other
// reads the winner's number; of two racing for different sets, the loser
// retries with the next number. Identities are never released, so the
// in-memory cache never goes stale.
type IdentityAllocator struct {
	s Store

	mu       sync.Mutex
	byLabels map[string]*identity.Identity
	byID     map[identity.ID]*identity.Identity
}

var _ identity.Allocator = (*IdentityAllocator)(nil)

// NewIdentityAllocator returns an allocator over s.
func NewIdentityAllocator(s Store) *IdentityAllocator {
	return &IdentityAllocator{s: s, byLabels: map[string]*identity.Identity{}, byID: map[identity.ID]*identity.Identity{}}
}

// Allocate implements identity.Allocator: workload label sets get IDs from
// identity.MinLocal up to identity.MinCIDR-1.
func (a *IdentityAllocator) Allocate(ctx context.Context, lbls labels.Set) (*identity.Identity, error) {
	return a.allocate(ctx, lbls, nextLocalKey, identity.MinLocal, identity.MinCIDR-1)
}

// AllocateCIDR implements identity.Allocator: CIDR prefixes get IDs from
// identity.MinCIDR up. They are kept in the store like the others, so every
// node agrees on them too.
func (a *IdentityAllocator) AllocateCIDR(ctx context.Context, prefix netip.Prefix) (*identity.Identity, error) {
	return a.allocate(ctx, identity.CIDRLabels(prefix), nextCIDRKey, identity.MinCIDR, math.MaxUint32)
}

// Lookup implements identity.Allocator. A store error reads as "not found".
func (a *IdentityAllocator) Lookup(ctx context.Context, id identity.ID) (*identity.Identity, bool) {
	if r := identity.Reserved(id); r != nil {
		return r, true
	}
	a.mu.Lock()
	i, ok := a.byID[id]
	a.mu.Unlock()
	if ok {
		return i, true
	}
	kv, err := a.s.Get(ctx, idKey(id))
	if err != nil {
		return nil, false
	}
	var v idValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return nil, false
	}
	return a.remember(&identity.Identity{ID: id, Labels: labels.New(v.Labels)}), true
}

// idValue is the value of an id/<ID> key.
type idValue struct {
	Labels map[string]string `json:"labels"`
}

func idKey(id identity.ID) string { return identityIDPrefix + strconv.FormatUint(uint64(id), 10) }

func (a *IdentityAllocator) cached(lbls labels.Set) *identity.Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byLabels[lbls.String()]
}

// remember caches i and returns the cached identity for its labels, so
// callers share one *Identity per label set.
func (a *IdentityAllocator) remember(i *identity.Identity) *identity.Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.byLabels[i.Labels.String()]; ok {
		return prev
	}
	a.byLabels[i.Labels.String()] = i
	a.byID[i.ID] = i
	return i
}

func (a *IdentityAllocator) allocate(ctx context.Context, lbls labels.Set, counterKey string, lo, hi identity.ID) (*identity.Identity, error) {
	if i := a.cached(lbls); i != nil {
		return i, nil
	}
	labelsKey := identityLabelsPrefix + lbls.String()
	value, err := json.Marshal(idValue{Labels: lbls.Map()})
	if err != nil {
		return nil, err
	}
	floor := lo // numbers below floor turned out to be taken
	for range maxAllocateAttempts {
		if i, err := a.read(ctx, labelsKey, lbls); err == nil {
			return i, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		next, counterCond := uint64(lo), KeyMissing(counterKey)
		switch kv, err := a.s.Get(ctx, counterKey); {
		case err == nil:
			if next, err = strconv.ParseUint(string(kv.Value), 10, 64); err != nil {
				return nil, fmt.Errorf("allocate identity: counter %s: %w", counterKey, err)
			}
			counterCond = KeyAtRevision(counterKey, kv.Revision)
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("allocate identity: %w", err)
		}
		next = max(next, uint64(floor))
		if next > uint64(hi) {
			return nil, fmt.Errorf("allocate identity for %s: all identities from %d to %d are in use", lbls, lo, hi)
		}
		id := identity.ID(next)
		_, err = a.s.Apply(ctx, []KV{
			{Key: labelsKey, Value: []byte(strconv.FormatUint(next, 10))},
			{Key: idKey(id), Value: value},
			{Key: counterKey, Value: []byte(strconv.FormatUint(next+1, 10))},
		}, nil, KeyMissing(labelsKey), counterCond, KeyMissing(idKey(id)))
		if err == nil {
			return a.remember(&identity.Identity{ID: id, Labels: lbls}), nil
		}
		var ce *ConflictError
		if !errors.As(err, &ce) {
			return nil, fmt.Errorf("allocate identity for %s: %w", lbls, err)
		}
		for _, c := range ce.Failed {
			if c.Key() == idKey(id) {
				floor = id + 1 // taken although the counter says free: skip it
			}
		}
	}
	return nil, fmt.Errorf("allocate identity for %s: gave up after %d conflicting attempts", lbls, maxAllocateAttempts)
}

// read returns the identity stored for labelsKey, or an error matching
// ErrNotFound.
func (a *IdentityAllocator) read(ctx context.Context, labelsKey string, lbls labels.Set) (*identity.Identity, error) {
	kv, err := a.s.Get(ctx, labelsKey)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("allocate identity: %w", err)
	}
	n, err := strconv.ParseUint(string(kv.Value), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("allocate identity: %s: %w", labelsKey, err)
	}
	return a.remember(&identity.Identity{ID: identity.ID(n), Labels: lbls}), nil
}
