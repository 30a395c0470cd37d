package datapath

import (
	"fmt"
	"net/netip"
	"time"
)

// fromCTEntry converts a conntrack row; c converts its CLOCK_BOOTTIME
// times (the datapath's clock, so that suspend does not freeze timeouts).
func fromCTEntry(k *bpfCtKey, v *bpfCtEntry, c *bootClock) CTEntry {
	src := bytesAddr(k.Family, k.Saddr)
	dst := bytesAddr(k.Family, k.Daddr)
	return CTEntry{
		Endpoint:     EndpointID(k.Endpoint),
		Direction:    Direction(k.Direction),
		Proto:        k.Proto,
		Src:          netip.AddrPortFrom(src, fromBE16(k.Sport)),
		Dst:          netip.AddrPortFrom(dst, fromBE16(k.Dport)),
		Created:      c.time(v.Created),
		Expires:      c.time(v.Expires),
		RuleID:       v.RuleId,
		PeerIdentity: Identity(v.PeerIdentity),
		ProxyPort:    v.ProxyPort,
		TCPState:     TCPState(v.TcpState),
		Audit:        v.Flags&uint8(bpfCtFlagsCT_FLAG_AUDIT) != 0,
		Redirect:     v.Flags&uint8(bpfCtFlagsCT_FLAG_REDIRECT) != 0,
		SeenReply:    v.Flags&uint8(bpfCtFlagsCT_FLAG_SEEN_REPLY) != 0,
		PacketsFwd:   v.PacketsFwd,
		BytesFwd:     v.BytesFwd,
		PacketsRev:   v.PacketsRev,
		BytesRev:     v.BytesRev,
	}
}

// Conntrack calls fn for every live conntrack entry until fn returns
// false. Expired entries that the kernel has not reclaimed yet are skipped.
func (d *Datapath) Conntrack(fn func(CTEntry) bool) error {
	var (
		k bpfCtKey
		v bpfCtEntry
	)
	var c bootClock
	c.at(time.Now())
	now := c.boot
	it := d.maps.Conntrack.Iterate()
	for it.Next(&k, &v) {
		if v.Expires < now {
			continue
		}
		if !fn(fromCTEntry(&k, &v, &c)) {
			return nil
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("dump conntrack: %w", err)
	}
	return nil
}

// FlushConntrack deletes endpoint ep's entries that f matches and returns
// how many it deleted.
//
// Conntrack lets established connections outlive the policy that allowed
// them, as in Cilium: removing an allow stops new connections only. When a
// rule or an identity loses access the agent calls FlushConntrack with
// CTFilter.RuleID or CTFilter.PeerIdentity to cut the connections it opened;
// their next packets are then checked against policy as new (TCP without
// SYN is dropped with ReasonCTNoEntry unless still allowed).
func (d *Datapath) FlushConntrack(ep EndpointID, f CTFilter) (int, error) {
	var c bootClock
	c.at(time.Now())
	return d.flushConntrack(func(k *bpfCtKey, v *bpfCtEntry) bool {
		if EndpointID(k.Endpoint) != ep {
			return false
		}
		e := fromCTEntry(k, v, &c)
		return f.Match(&e)
	})
}

// GCConntrack deletes expired entries and returns how many. The programs
// ignore expired entries and the LRU map reclaims space on its own; GC only
// keeps dumps and map pressure honest, so once a minute is plenty.
func (d *Datapath) GCConntrack() (int, error) {
	now := bootNow()
	return d.flushConntrack(func(_ *bpfCtKey, v *bpfCtEntry) bool { return v.Expires < now })
}

func (d *Datapath) flushConntrack(match func(*bpfCtKey, *bpfCtEntry) bool) (int, error) {
	var (
		k    bpfCtKey
		v    bpfCtEntry
		keys []bpfCtKey
	)
	it := d.maps.Conntrack.Iterate()
	for it.Next(&k, &v) {
		if match(&k, &v) {
			keys = append(keys, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("flush conntrack: %w", err)
	}
	if err := batchDelete(d.maps.Conntrack, keys); err != nil {
		return 0, fmt.Errorf("flush conntrack: %w", err)
	}
	return len(keys), nil
}
