package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"sort"
)

// IPAM hands out endpoint ids and addresses from a node's pod CIDRs and
// keeps them in one JSON file, like CNI's host-local IPAM: the allocations
// are local to the node, so they need no cluster store. Every change is
// written atomically before it is returned, so an allocation survives a
// crash and is never handed out twice.
//
// Reserved and never handed out: in IPv4 the network address, the first
// address (kept for a gateway on the node, though endpoints route via
// 169.254.1.1) and the broadcast address; in IPv6 the subnet-router anycast
// address (the prefix itself) and the first address. Ids and addresses
// are handed out round-robin after the last one given, so a released
// address is reused as late as possible (stale conntrack entries, caches
// and logs keep naming the old owner for a while).
//
// IPAM is not safe for concurrent use; the Manager serialises it.
type IPAM struct {
	path string
	st   ipamState
	// used4 and used6 index st.Allocations.
	used4, used6 map[netip.Addr]uint16
	// blocked explains why Allocate fails: a pod CIDR changed while
	// addresses of the old one are allocated.
	blocked error
}

// Allocation is one endpoint's id and addresses.
type Allocation struct {
	ID    uint16     `json:"id"`
	Owner string     `json:"owner"`
	IPv4  netip.Addr `json:"ipv4,omitzero"`
	IPv6  netip.Addr `json:"ipv6,omitzero"`
}

type ipamState struct {
	Version     int                   `json:"version"`
	PodCIDR4    netip.Prefix          `json:"podCIDR4,omitzero"`
	PodCIDR6    netip.Prefix          `json:"podCIDR6,omitzero"`
	LastID      uint16                `json:"lastID"`
	Last4       netip.Addr            `json:"last4,omitzero"`
	Last6       netip.Addr            `json:"last6,omitzero"`
	Allocations map[uint16]Allocation `json:"allocations"`
}

const ipamVersion = 1

// OpenIPAM opens the IPAM state at path, creating it if missing. A pod
// CIDR may change only while no address of that family is allocated:
// otherwise the old CIDR stays in effect and Allocate fails (with
// ErrInvalid) until those addresses are released. Opening still works,
// so endpoints of the old CIDR can be restored, deleted and cleaned up.
func OpenIPAM(path string, cidr4, cidr6 netip.Prefix) (*IPAM, error) {
	if cidr4.IsValid() {
		if err := validatePool(cidr4, 4); err != nil {
			return nil, fmt.Errorf("%w pod CIDR: %v", ErrInvalid, err)
		}
	}
	if cidr6.IsValid() {
		if err := validatePool(cidr6, 6); err != nil {
			return nil, fmt.Errorf("%w pod CIDR: %v", ErrInvalid, err)
		}
	}
	a := &IPAM{path: path}
	err := readJSON(path, &a.st)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		a.st = ipamState{Version: ipamVersion}
	case err != nil:
		return nil, err
	case a.st.Version != ipamVersion:
		return nil, fmt.Errorf("%s: version %d, want %d", path, a.st.Version, ipamVersion)
	}
	if a.st.Allocations == nil {
		a.st.Allocations = map[uint16]Allocation{}
	}
	a.used4 = map[netip.Addr]uint16{}
	a.used6 = map[netip.Addr]uint16{}
	for id, al := range a.st.Allocations {
		if id == 0 || al.ID != id {
			return nil, fmt.Errorf("%s: allocation %d has id %d", path, id, al.ID)
		}
		if al.IPv4.IsValid() {
			if other, dup := a.used4[al.IPv4]; dup {
				return nil, fmt.Errorf("%s: %v allocated to both %d and %d", path, al.IPv4, other, id)
			}
			a.used4[al.IPv4] = id
		}
		if al.IPv6.IsValid() {
			if other, dup := a.used6[al.IPv6]; dup {
				return nil, fmt.Errorf("%s: %v allocated to both %d and %d", path, al.IPv6, other, id)
			}
			a.used6[al.IPv6] = id
		}
	}
	if a.st.PodCIDR4 != cidr4 {
		if len(a.used4) > 0 {
			a.blocked = errors.Join(a.blocked, fmt.Errorf("%w pod CIDR: %d IPv4 addresses are allocated from %v; cannot switch to %v before those endpoints are deleted",
				ErrInvalid, len(a.used4), a.st.PodCIDR4, cidr4))
		} else {
			a.st.PodCIDR4, a.st.Last4 = cidr4, netip.Addr{}
		}
	}
	if a.st.PodCIDR6 != cidr6 {
		if len(a.used6) > 0 {
			a.blocked = errors.Join(a.blocked, fmt.Errorf("%w pod CIDR: %d IPv6 addresses are allocated from %v; cannot switch to %v before those endpoints are deleted",
				ErrInvalid, len(a.used6), a.st.PodCIDR6, cidr6))
		} else {
			a.st.PodCIDR6, a.st.Last6 = cidr6, netip.Addr{}
		}
	}
	return a, a.save()
}

// Pools returns the pod CIDRs in effect: the ones asked for, except where
// a CIDR was changed while addresses of the old one are still allocated;
// then the old one stays in effect (for routing and masquerading of the
// endpoints that use it) and Allocate fails until they are released.
func (a *IPAM) Pools() (v4, v6 netip.Prefix) { return a.st.PodCIDR4, a.st.PodCIDR6 }

// validatePool checks that p is a usable pod CIDR of family 4 or 6.
func validatePool(p netip.Prefix, family int) error {
	addr := p.Addr()
	switch {
	case family == 4 && (!addr.Is4()):
		return fmt.Errorf("%v is not an IPv4 prefix", p)
	case family == 6 && (!addr.Is6() || addr.Is4In6()):
		return fmt.Errorf("%v is not an IPv6 prefix", p)
	case p != p.Masked():
		return fmt.Errorf("%v has host bits set (want %v)", p, p.Masked())
	case family == 4 && p.Bits() > 30:
		return fmt.Errorf("%v is too small: want /30 or larger", p)
	case family == 6 && p.Bits() > 126:
		return fmt.Errorf("%v is too small: want /126 or larger", p)
	case addr.IsLinkLocalUnicast() || addr.IsLoopback() || addr.IsMulticast() || addr.IsUnspecified() ||
		p.Contains(GatewayIPv4) || p.Contains(GatewayIPv6):
		return fmt.Errorf("%v is not a unicast range (loopback, link-local, multicast or unspecified)", p)
	}
	return nil
}

// usableRange returns the first and last address IPAM hands out from p.
func usableRange(p netip.Prefix) (first, last netip.Addr) {
	first = p.Addr().Next().Next() // skip network (or anycast) and gateway
	a := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	last, _ = netip.AddrFromSlice(a)
	if p.Addr().Is4() {
		last = last.Prev() // broadcast
	}
	return first, last
}

// Allocate hands out a new id and one address of each enabled family to
// owner (for the Manager "namespace/name"), and persists the result.
func (a *IPAM) Allocate(owner string) (Allocation, error) {
	if a.blocked != nil {
		return Allocation{}, a.blocked
	}
	if len(a.st.Allocations) >= 0xffff {
		return Allocation{}, fmt.Errorf("%w: all 65535 endpoint ids are in use", ErrExhausted)
	}
	id := a.st.LastID
	for {
		id++
		if id == 0 {
			id = 1
		}
		if _, used := a.st.Allocations[id]; !used {
			break
		}
	}
	al := Allocation{ID: id, Owner: owner}
	var err error
	if a.st.PodCIDR4.IsValid() {
		if al.IPv4, err = nextFree(a.st.PodCIDR4, a.st.Last4, a.used4); err != nil {
			return Allocation{}, err
		}
	}
	if a.st.PodCIDR6.IsValid() {
		if al.IPv6, err = nextFree(a.st.PodCIDR6, a.st.Last6, a.used6); err != nil {
			return Allocation{}, err
		}
	}
	prev := a.st
	a.st.LastID = id
	if al.IPv4.IsValid() {
		a.st.Last4 = al.IPv4
	}
	if al.IPv6.IsValid() {
		a.st.Last6 = al.IPv6
	}
	a.st.Allocations[id] = al
	if err := a.save(); err != nil {
		delete(a.st.Allocations, id)
		a.st.LastID, a.st.Last4, a.st.Last6 = prev.LastID, prev.Last4, prev.Last6
		return Allocation{}, err
	}
	if al.IPv4.IsValid() {
		a.used4[al.IPv4] = id
	}
	if al.IPv6.IsValid() {
		a.used6[al.IPv6] = id
	}
	return al, nil
}

// nextFree returns the first unused address after last in p's usable
// range, wrapping around. It looks at no more than len(used)+1 candidates
// (one of them must be free when the range is larger), so a /64 costs no
// more than a /30.
func nextFree(p netip.Prefix, last netip.Addr, used map[netip.Addr]uint16) (netip.Addr, error) {
	first, end := usableRange(p)
	a := last
	for range len(used) + 1 {
		if !a.IsValid() || !p.Contains(a) || a.Compare(first) < 0 || a.Compare(end) >= 0 {
			a = first
		} else {
			a = a.Next()
		}
		if _, taken := used[a]; !taken {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in %v", ErrExhausted, p)
}

// Release frees id and its addresses. Releasing an id that is not
// allocated does nothing.
func (a *IPAM) Release(id uint16) error {
	al, ok := a.st.Allocations[id]
	if !ok {
		return nil
	}
	delete(a.st.Allocations, id)
	if err := a.save(); err != nil {
		a.st.Allocations[id] = al
		return err
	}
	delete(a.used4, al.IPv4)
	delete(a.used6, al.IPv6)
	return nil
}

// Get returns id's allocation.
func (a *IPAM) Get(id uint16) (Allocation, bool) {
	al, ok := a.st.Allocations[id]
	return al, ok
}

// Allocations returns every allocation, ordered by id.
func (a *IPAM) Allocations() []Allocation {
	out := make([]Allocation, 0, len(a.st.Allocations))
	for _, al := range a.st.Allocations {
		out = append(out, al)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (a *IPAM) save() error { return writeJSON(a.path, a.st) }
