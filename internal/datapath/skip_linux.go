package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Lookup-skip bits of endpoint_info.skip. They must match enum lookup_skip
// in bpf/types.h; TestConstantsMatchC keeps them in step.
const (
	skipAnyPeer     uint32 = 1 << 0
	skipAnyProto    uint32 = 1 << 1
	skipCIDR        uint32 = 1 << 2
	skipEgressShift        = 8

	// skipPolicyMask holds the bits that policy rows decide, in both
	// directions; skipCIDRMask those that CIDR class rows decide.
	skipPolicyMask = (skipAnyPeer | skipAnyProto) | (skipAnyPeer|skipAnyProto)<<skipEgressShift
	skipCIDRMask   = skipCIDR | skipCIDR<<skipEgressShift
)

// skipBit returns the lookup-skip bit of kind in direction dir.
func skipBit(kind uint32, dir Direction) uint32 {
	if dir == Egress {
		return kind << skipEgressShift
	}
	return kind
}

// policySkips returns the skip bits of the policy lookups that rows give
// no reason to make: a direction without wildcard-peer rows skips the
// wildcard-peer lookups, one without wildcard-protocol rows the
// wildcard-protocol lookups.
func policySkips(rows []PolicyEntry) uint32 {
	skip := skipPolicyMask
	for _, e := range rows {
		if e.Key.Peer == IdentityAny {
			skip &^= skipBit(skipAnyPeer, e.Key.Direction)
		}
		if e.Key.Proto == ProtoAny {
			skip &^= skipBit(skipAnyProto, e.Key.Direction)
		}
	}
	return skip
}

// cidrSkips returns the skip bits of the CIDR class lookup for the
// directions that rows have no CIDR class entry in.
func cidrSkips(rows []CIDREntry) uint32 {
	skip := skipCIDRMask
	for _, e := range rows {
		skip &^= skipBit(skipCIDR, e.Direction)
	}
	return skip
}

// The skip bits let a new flow leave out trie lookups that cannot match
// (bpf/types.h, enum lookup_skip). A bit that is set while a row of its
// kind exists would make the datapath ignore that row, so the writers keep
// one rule: clear a bit before writing a row of its kind (clearSkips), and
// set it only after the last such row is gone and no row was written for
// the endpoint meanwhile (setSkips, with the generation clearSkips
// returned). SetEndpoint writes the whole endpoint_info and keeps the bits.
//
// The bits live in the endpoints map, which has no entry before the first
// SetEndpoint; the agent syncs an endpoint's rows before its
// configuration, so d.skips remembers the bits for SetEndpoint to write.

// clearSkips clears bits of endpoint ep and returns the generation that a
// later setSkips for the same rows must present.
func (d *Datapath) clearSkips(ep EndpointID, bits uint32) (uint64, error) {
	d.epMu.Lock()
	defer d.epMu.Unlock()
	d.skipGen[ep]++
	err := d.updateSkips(ep, func(s uint32) uint32 { return s &^ bits })
	return d.skipGen[ep], err
}

// setSkips makes endpoint ep's bits under mask equal to bits, unless rows
// were written for ep since clearSkips returned gen.
func (d *Datapath) setSkips(ep EndpointID, mask, bits uint32, gen uint64) error {
	d.epMu.Lock()
	defer d.epMu.Unlock()
	if d.skipGen[ep] != gen {
		return nil
	}
	return d.updateSkips(ep, func(s uint32) uint32 { return s&^mask | bits&mask })
}

// updateSkips applies f to endpoint ep's skip bits in the endpoints map,
// or to the remembered bits when the endpoint has no entry yet. d.epMu
// must be held.
func (d *Datapath) updateSkips(ep EndpointID, f func(uint32) uint32) error {
	var v bpfEndpointInfo
	err := d.maps.Endpoints.Lookup(uint16(ep), &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		d.skips[ep] = f(d.skips[ep])
		return nil
	}
	if err != nil {
		return fmt.Errorf("endpoint %d lookup flags: %w", ep, err)
	}
	s := f(v.Skip)
	d.skips[ep] = s
	if s == v.Skip {
		return nil
	}
	v.Skip = s
	if err := d.maps.Endpoints.Update(uint16(ep), &v, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("endpoint %d lookup flags: %w", ep, err)
	}
	return nil
}

// forgetSkips drops what d remembers of endpoint ep's bits, for when the
// endpoint is deleted: a new endpoint with the same id starts from none.
func (d *Datapath) forgetSkips(ep EndpointID) {
	d.epMu.Lock()
	defer d.epMu.Unlock()
	delete(d.skips, ep)
	delete(d.skipGen, ep)
}
