package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// ---- ipcache ----

func ipcacheKey(p netip.Prefix) (bpfIpcacheKey, error) {
	f, b, n, err := prefixParts(p)
	if err != nil {
		return bpfIpcacheKey{}, err
	}
	return bpfIpcacheKey{Prefixlen: uint32(32 + n), Family: f, Addr: b}, nil
}

// SetIdentity maps every address in prefix to id, unless a longer prefix
// says otherwise. Addresses in no prefix are IdentityWorld.
func (d *Datapath) SetIdentity(prefix netip.Prefix, id Identity) error {
	return d.SetIdentities([]IdentityEntry{{prefix, id}})
}

// SetIdentities writes many ipcache rows in one batch.
func (d *Datapath) SetIdentities(entries []IdentityEntry) error {
	keys := make([]bpfIpcacheKey, len(entries))
	vals := make([]bpfIpcacheValue, len(entries))
	for i, e := range entries {
		k, err := ipcacheKey(e.Prefix)
		if err != nil {
			return fmt.Errorf("set identity: %w", err)
		}
		keys[i], vals[i] = k, bpfIpcacheValue{Identity: uint32(e.Identity)}
	}
	if err := batchPut(d.maps.Ipcache, keys, vals); err != nil {
		return fmt.Errorf("set identity: %w", err)
	}
	return nil
}

// DeleteIdentity removes the row for exactly prefix; a missing row is not
// an error, so reconcilers can delete blindly.
func (d *Datapath) DeleteIdentity(prefix netip.Prefix) error {
	k, err := ipcacheKey(prefix)
	if err != nil {
		return fmt.Errorf("delete identity: %w", err)
	}
	if err := d.maps.Ipcache.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete identity %v: %w", prefix, err)
	}
	return nil
}

// LookupIdentity returns the identity the datapath gives addr, as the
// programs see it: the longest matching prefix, else IdentityWorld.
func (d *Datapath) LookupIdentity(addr netip.Addr) (Identity, error) {
	k, err := ipcacheKey(netip.PrefixFrom(addr, addr.BitLen()))
	if err != nil {
		return 0, fmt.Errorf("lookup identity: %w", err)
	}
	var v bpfIpcacheValue
	err = d.maps.Ipcache.Lookup(&k, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return IdentityWorld, nil
	}
	if err != nil {
		return 0, fmt.Errorf("lookup identity %v: %w", addr, err)
	}
	return Identity(v.Identity), nil
}

// Identities dumps the ipcache.
func (d *Datapath) Identities() ([]IdentityEntry, error) {
	var (
		k   bpfIpcacheKey
		v   bpfIpcacheValue
		out []IdentityEntry
	)
	it := d.maps.Ipcache.Iterate()
	for it.Next(&k, &v) {
		a := bytesAddr(k.Family, k.Addr)
		out = append(out, IdentityEntry{netip.PrefixFrom(a, int(k.Prefixlen)-32), Identity(v.Identity)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump identities: %w", err)
	}
	return out, nil
}

// ---- policy ----

func policyKey(k PolicyKey) (bpfPolicyKey, error) {
	if err := k.Validate(); err != nil {
		return bpfPolicyKey{}, err
	}
	return bpfPolicyKey{
		Prefixlen: 64 + uint32(k.Port.Len),
		Endpoint:  uint16(k.Endpoint),
		Direction: bpfDirection(k.Direction),
		Proto:     k.Proto,
		Peer:      uint32(k.Peer),
		Dport:     be16(k.Port.Port),
	}, nil
}

func fromPolicyKey(k bpfPolicyKey) PolicyKey {
	return PolicyKey{
		Endpoint:  EndpointID(k.Endpoint),
		Direction: Direction(k.Direction),
		Proto:     k.Proto,
		Peer:      Identity(k.Peer),
		Port:      PortPrefix{Port: fromBE16(k.Dport), Len: uint8(k.Prefixlen - 64)},
	}
}

// UpdatePolicy adds or replaces entries in one batch. The caller is
// responsible for deny precedence across port prefixes (ResolvePrecedence),
// which SyncPolicy does for it.
func (d *Datapath) UpdatePolicy(entries []PolicyEntry) error {
	byEP := make(map[EndpointID][]PolicyEntry)
	for _, e := range entries {
		byEP[e.Key.Endpoint] = append(byEP[e.Key.Endpoint], e)
	}
	for ep, rows := range byEP {
		if _, err := d.clearSkips(ep, skipPolicyMask&^policySkips(rows)); err != nil {
			return fmt.Errorf("update policy: %w", err)
		}
	}
	return d.updatePolicy(entries)
}

// updatePolicy writes entries whose lookups the skip bits already allow.
func (d *Datapath) updatePolicy(entries []PolicyEntry) error {
	keys := make([]bpfPolicyKey, len(entries))
	vals := make([]bpfPolicyValue, len(entries))
	for i, e := range entries {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("update policy: entry %d: %w", i, err)
		}
		keys[i], _ = policyKey(e.Key)
		vals[i] = bpfPolicyValue{
			Verdict:   bpfPolicyVerdict(e.Value.Verdict),
			ProxyPort: e.Value.ProxyPort,
			RuleId:    e.Value.RuleID,
		}
	}
	if err := batchPut(d.maps.Policy, keys, vals); err != nil {
		return fmt.Errorf("update policy: %w", err)
	}
	return nil
}

// DeletePolicy deletes entries by key; missing keys are ignored.
func (d *Datapath) DeletePolicy(keys []PolicyKey) error {
	bk := make([]bpfPolicyKey, len(keys))
	for i, k := range keys {
		var err error
		if bk[i], err = policyKey(k); err != nil {
			return fmt.Errorf("delete policy: key %d: %w", i, err)
		}
	}
	if err := batchDelete(d.maps.Policy, bk); err != nil {
		return fmt.Errorf("delete policy: %w", err)
	}
	return nil
}

// PolicyEntries returns endpoint ep's entries, sorted; ep 0 returns all.
func (d *Datapath) PolicyEntries(ep EndpointID) ([]PolicyEntry, error) {
	var (
		k   bpfPolicyKey
		v   bpfPolicyValue
		out []PolicyEntry
	)
	it := d.maps.Policy.Iterate()
	for it.Next(&k, &v) {
		if ep != 0 && EndpointID(k.Endpoint) != ep {
			continue
		}
		out = append(out, PolicyEntry{fromPolicyKey(k), PolicyValue{
			Verdict:   Verdict(v.Verdict),
			ProxyPort: v.ProxyPort,
			RuleID:    v.RuleId,
		}})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump policy: %w", err)
	}
	SortPolicy(out)
	return out, nil
}

// SyncPolicy makes endpoint ep's policy equal to entries after
// ResolvePrecedence. It writes new and changed entries first and deletes
// stale ones last, so a rule present before and after never disappears
// mid-update; a rule being replaced by a narrower one may briefly coexist
// with it. A nil entries removes all of ep's policy. Calls for the same
// endpoint must not overlap: each diffs against what it reads, so the
// endpoint manager serialises them per endpoint.
func (d *Datapath) SyncPolicy(ep EndpointID, entries []PolicyEntry) error {
	for i, e := range entries {
		if e.Key.Endpoint != ep {
			return fmt.Errorf("sync policy for endpoint %d: entry %d is for endpoint %d: %w", ep, i, e.Key.Endpoint, ErrInvalid)
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("sync policy for endpoint %d: entry %d: %w", ep, i, err)
		}
	}
	want := ResolvePrecedence(entries)
	skips := policySkips(want)
	gen, err := d.clearSkips(ep, skipPolicyMask&^skips)
	if err != nil {
		return fmt.Errorf("sync policy for endpoint %d: %w", ep, err)
	}
	have, err := d.PolicyEntries(ep)
	if err != nil {
		return fmt.Errorf("sync policy for endpoint %d: %w", ep, err)
	}
	cur := make(map[PolicyKey]PolicyValue, len(have))
	for _, e := range have {
		cur[e.Key] = e.Value
	}
	var upd []PolicyEntry
	for _, e := range want {
		if v, ok := cur[e.Key]; !ok || v != e.Value {
			upd = append(upd, e)
		}
		delete(cur, e.Key)
	}
	if err := d.updatePolicy(upd); err != nil {
		return fmt.Errorf("sync policy for endpoint %d: %w", ep, err)
	}
	del := make([]PolicyKey, 0, len(cur))
	for k := range cur {
		del = append(del, k)
	}
	if err := d.DeletePolicy(del); err != nil {
		return fmt.Errorf("sync policy for endpoint %d: %w", ep, err)
	}
	if err := d.setSkips(ep, skipPolicyMask, skips, gen); err != nil {
		return fmt.Errorf("sync policy for endpoint %d: %w", ep, err)
	}
	return nil
}

// ---- CIDR classes ----

func cidrKey(e CIDREntry) (bpfCidrKey, error) {
	if err := e.Validate(); err != nil {
		return bpfCidrKey{}, err
	}
	f, b, n, err := prefixParts(e.Prefix)
	if err != nil {
		return bpfCidrKey{}, err
	}
	return bpfCidrKey{
		Prefixlen: uint32(32 + n),
		Endpoint:  uint16(e.Endpoint),
		Direction: bpfDirection(e.Direction),
		Family:    f,
		Addr:      b,
	}, nil
}

// UpdateCIDR adds or replaces CIDR class entries in one batch.
func (d *Datapath) UpdateCIDR(entries []CIDREntry) error {
	byEP := make(map[EndpointID][]CIDREntry)
	for _, e := range entries {
		byEP[e.Endpoint] = append(byEP[e.Endpoint], e)
	}
	for ep, rows := range byEP {
		if _, err := d.clearSkips(ep, skipCIDRMask&^cidrSkips(rows)); err != nil {
			return fmt.Errorf("update cidr: %w", err)
		}
	}
	return d.updateCIDR(entries)
}

// updateCIDR writes entries whose lookups the skip bits already allow.
func (d *Datapath) updateCIDR(entries []CIDREntry) error {
	keys := make([]bpfCidrKey, len(entries))
	vals := make([]bpfCidrValue, len(entries))
	for i, e := range entries {
		k, err := cidrKey(e)
		if err != nil {
			return fmt.Errorf("update cidr: entry %d: %w", i, err)
		}
		keys[i], vals[i] = k, bpfCidrValue{ClassAny: e.Class.Any, ClassWorld: e.Class.World}
	}
	if err := batchPut(d.maps.Cidr, keys, vals); err != nil {
		return fmt.Errorf("update cidr: %w", err)
	}
	return nil
}

// DeleteCIDR deletes CIDR class entries (Class is ignored); missing entries
// are ignored.
func (d *Datapath) DeleteCIDR(entries []CIDREntry) error {
	keys := make([]bpfCidrKey, len(entries))
	for i, e := range entries {
		var err error
		if keys[i], err = cidrKey(e); err != nil {
			return fmt.Errorf("delete cidr: entry %d: %w", i, err)
		}
	}
	if err := batchDelete(d.maps.Cidr, keys); err != nil {
		return fmt.Errorf("delete cidr: %w", err)
	}
	return nil
}

// CIDREntries returns endpoint ep's CIDR class entries; ep 0 returns all.
func (d *Datapath) CIDREntries(ep EndpointID) ([]CIDREntry, error) {
	var (
		k   bpfCidrKey
		v   bpfCidrValue
		out []CIDREntry
	)
	it := d.maps.Cidr.Iterate()
	for it.Next(&k, &v) {
		if ep != 0 && EndpointID(k.Endpoint) != ep {
			continue
		}
		out = append(out, CIDREntry{
			Endpoint:  EndpointID(k.Endpoint),
			Direction: Direction(k.Direction),
			Prefix:    netip.PrefixFrom(bytesAddr(k.Family, k.Addr), int(k.Prefixlen)-32),
			Class:     CIDRClass{Any: v.ClassAny, World: v.ClassWorld},
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("dump cidr: %w", err)
	}
	return out, nil
}

// SyncCIDR makes endpoint ep's CIDR class entries equal to entries, adding
// before deleting like SyncPolicy.
func (d *Datapath) SyncCIDR(ep EndpointID, entries []CIDREntry) error {
	type key struct {
		dir Direction
		p   netip.Prefix
	}
	norm := func(e CIDREntry) key {
		p := e.Prefix.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return key{e.Direction, p}
	}
	for i, e := range entries {
		if e.Endpoint != ep {
			return fmt.Errorf("sync cidr for endpoint %d: entry %d is for endpoint %d: %w", ep, i, e.Endpoint, ErrInvalid)
		}
	}
	skips := cidrSkips(entries)
	gen, err := d.clearSkips(ep, skipCIDRMask&^skips)
	if err != nil {
		return fmt.Errorf("sync cidr for endpoint %d: %w", ep, err)
	}
	have, err := d.CIDREntries(ep)
	if err != nil {
		return fmt.Errorf("sync cidr for endpoint %d: %w", ep, err)
	}
	cur := make(map[key]CIDREntry, len(have))
	for _, e := range have {
		cur[norm(e)] = e
	}
	var upd []CIDREntry
	for _, e := range entries {
		k := norm(e)
		if old, ok := cur[k]; !ok || old.Class != e.Class {
			upd = append(upd, e)
		}
		delete(cur, k)
	}
	if err := d.updateCIDR(upd); err != nil {
		return fmt.Errorf("sync cidr for endpoint %d: %w", ep, err)
	}
	del := make([]CIDREntry, 0, len(cur))
	for _, e := range cur {
		del = append(del, e)
	}
	if err := d.DeleteCIDR(del); err != nil {
		return fmt.Errorf("sync cidr for endpoint %d: %w", ep, err)
	}
	if err := d.setSkips(ep, skipCIDRMask, skips, gen); err != nil {
		return fmt.Errorf("sync cidr for endpoint %d: %w", ep, err)
	}
	return nil
}

// ---- counters ----

// Counters returns every endpoint's counters summed over CPUs.
func (d *Datapath) Counters() ([]Counter, error) {
	var (
		k   bpfCounterKey
		per []bpfCounterValue
		out []Counter
	)
	it := d.maps.Counters.Iterate()
	for it.Next(&k, &per) {
		c := Counter{
			Endpoint:  EndpointID(k.Endpoint),
			Direction: Direction(k.Direction),
			Verdict:   FlowVerdict(k.Verdict),
			Reason:    DropReason(k.Reason),
		}
		for _, v := range per {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		out = append(out, c)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	return out, nil
}

func (d *Datapath) deleteCounters(ep EndpointID) error {
	var (
		k    bpfCounterKey
		per  []bpfCounterValue
		keys []bpfCounterKey
	)
	it := d.maps.Counters.Iterate()
	for it.Next(&k, &per) {
		if EndpointID(k.Endpoint) == ep {
			keys = append(keys, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("delete counters of endpoint %d: %w", ep, err)
	}
	if err := batchDelete(d.maps.Counters, keys); err != nil {
		return fmt.Errorf("delete counters of endpoint %d: %w", ep, err)
	}
	return nil
}
