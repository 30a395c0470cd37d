package datapath

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// PortPrefix is a set of ports (or ICMP type/codes) expressed as the top Len
// bits of Port. The policy map matches ports by longest prefix, so a port
// range compiles to the few prefixes PortRange returns.
type PortPrefix struct {
	Port uint16
	Len  uint8 // 0 = any port, 16 = exactly Port
}

// AnyPort matches every port, and is the only prefix that matches packets
// without a port.
var AnyPort = PortPrefix{}

// Port returns the prefix matching exactly p.
func Port(p uint16) PortPrefix { return PortPrefix{Port: p, Len: 16} }

// ICMPType returns the prefix matching every code of ICMP type t. For ICMP
// and ICMPv6 the port field carries type<<8|code, so a Cilium "icmps" rule
// for a type is a prefix of length 8.
func ICMPType(t uint8) PortPrefix { return PortPrefix{Port: uint16(t) << 8, Len: 8} }

// ICMPTypeCode returns the prefix matching ICMP type t with code c.
func ICMPTypeCode(t, c uint8) PortPrefix { return PortPrefix{Port: uint16(t)<<8 | uint16(c), Len: 16} }

// Contains reports whether port p is in the prefix.
func (pp PortPrefix) Contains(p uint16) bool {
	if pp.Len == 0 {
		return true
	}
	shift := 16 - uint(pp.Len)
	return p>>shift == pp.Port>>shift
}

// covers reports whether every port of o is also in pp.
func (pp PortPrefix) covers(o PortPrefix) bool { return pp.Len <= o.Len && pp.Contains(o.Port) }

func (pp PortPrefix) valid() error {
	if pp.Len > 16 {
		return fmt.Errorf("port prefix length %d > 16: %w", pp.Len, ErrInvalid)
	}
	if pp.Len < 16 && pp.Port&(0xffff>>pp.Len) != 0 {
		return fmt.Errorf("port %d/%d has bits set beyond the prefix: %w", pp.Port, pp.Len, ErrInvalid)
	}
	return nil
}

func (pp PortPrefix) String() string {
	if pp.Len == 0 {
		return "*"
	}
	if pp.Len == 16 {
		return fmt.Sprint(pp.Port)
	}
	return fmt.Sprintf("%d-%d", pp.Port, uint32(pp.Port)+(1<<(16-uint(pp.Len)))-1)
}

// PortRange returns the minimal set of prefixes covering lo..hi inclusive.
// A range of 1..65535 takes 16 prefixes; typical service ranges take a few.
func PortRange(lo, hi uint16) ([]PortPrefix, error) {
	if lo > hi {
		return nil, fmt.Errorf("port range %d-%d is empty: %w", lo, hi, ErrInvalid)
	}
	if lo == 0 && hi == 0xffff {
		return []PortPrefix{AnyPort}, nil
	}
	var out []PortPrefix
	cur, end := uint32(lo), uint32(hi)
	for cur <= end {
		// The largest aligned block starting at cur that fits.
		size := uint32(1) << 16
		if cur != 0 {
			size = uint32(1) << bits.TrailingZeros32(cur)
		}
		for size > end-cur+1 {
			size >>= 1
		}
		out = append(out, PortPrefix{Port: uint16(cur), Len: uint8(16 - bits.TrailingZeros32(size))})
		cur += size
	}
	return out, nil
}

// PolicyKey selects the traffic a policy entry applies to. The kernel
// matches Endpoint, Direction, Proto and Peer exactly and Port by prefix;
// ProtoAny and IdentityAny are ordinary values that the program also looks
// up, which is how wildcards work.
type PolicyKey struct {
	Endpoint  EndpointID
	Direction Direction
	// Proto is an IP protocol number or ProtoAny. A ProtoAny entry with a
	// port matches only TCP, UDP and SCTP.
	Proto uint8
	// Peer is the remote identity, IdentityAny, or a CIDR class from
	// CIDRClassPeer.
	Peer Identity
	// Port is the destination port prefix; for ICMP and ICMPv6 it is the
	// type<<8|code prefix (see ICMPType).
	Port PortPrefix
}

// Validate reports a key the kernel could never match as intended.
func (k PolicyKey) Validate() error {
	if k.Endpoint == 0 {
		return fmt.Errorf("policy key: endpoint id 0: %w", ErrInvalid)
	}
	if k.Direction > Egress {
		return fmt.Errorf("policy key: %v: %w", k.Direction, ErrInvalid)
	}
	if err := k.Port.valid(); err != nil {
		return fmt.Errorf("policy key: %w", err)
	}
	return nil
}

func (k PolicyKey) group() policyGroup {
	return policyGroup{k.Endpoint, k.Direction, k.Proto, k.Peer}
}

type policyGroup struct {
	ep    EndpointID
	dir   Direction
	proto uint8
	peer  Identity
}

// PolicyValue is what the kernel does with traffic matching a key.
type PolicyValue struct {
	Verdict Verdict
	// ProxyPort is where VerdictRedirect sends traffic: the packet is
	// passed with skb->mark = 0x0200 | port<<16 for the proxy's TPROXY rule.
	ProxyPort uint16
	// RuleID is opaque to the kernel and reported in flows and conntrack,
	// so userspace can say which rule allowed or denied a packet.
	RuleID uint32
}

// PolicyEntry is one row of the policy map.
type PolicyEntry struct {
	Key   PolicyKey
	Value PolicyValue
}

// Validate checks the key and that the verdict is one the kernel knows.
func (e PolicyEntry) Validate() error {
	if err := e.Key.Validate(); err != nil {
		return err
	}
	switch e.Value.Verdict {
	case VerdictAllow, VerdictDeny:
	case VerdictRedirect:
		if e.Value.ProxyPort == 0 {
			return fmt.Errorf("policy entry: redirect without proxy port: %w", ErrInvalid)
		}
	default:
		return fmt.Errorf("policy entry: %v: %w", e.Value.Verdict, ErrInvalid)
	}
	return nil
}

// ResolvePrecedence rewrites a complete set of entries so that the kernel's
// longest-prefix match gives deny-wins results.
//
// The kernel resolves precedence between its lookups (peer vs any peer,
// proto vs any proto, identity vs CIDR class): any deny wins, then any
// redirect, then any allow. Within one lookup, though, the LPM trie returns
// only the longest matching port prefix, so an allow for port 80 would hide a
// deny for ports 0-1023 of the same peer and protocol. ResolvePrecedence
// closes that gap: an entry covered by a shorter prefix of higher precedence
// (deny > redirect > allow) in the same (endpoint, direction, proto, peer)
// takes that entry's value. Duplicate keys keep the highest precedence. The
// result is sorted, so equal inputs give equal outputs.
func ResolvePrecedence(entries []PolicyEntry) []PolicyEntry {
	byKey := make(map[PolicyKey]PolicyValue, len(entries))
	for _, e := range entries {
		if old, ok := byKey[e.Key]; ok && old.Verdict.precedence() >= e.Value.Verdict.precedence() {
			continue
		}
		byKey[e.Key] = e.Value
	}
	groups := make(map[policyGroup][]PolicyEntry)
	for k, v := range byKey {
		groups[k.group()] = append(groups[k.group()], PolicyEntry{k, v})
	}
	out := make([]PolicyEntry, 0, len(byKey))
	for _, g := range groups {
		// Shorter prefixes first, so a covering entry is final before the
		// entries it covers are resolved.
		slices.SortFunc(g, func(a, b PolicyEntry) int { return cmp.Compare(a.Key.Port.Len, b.Key.Port.Len) })
		for i := range g {
			for j := 0; j < i; j++ {
				if g[j].Key.Port.covers(g[i].Key.Port) &&
					g[j].Value.Verdict.precedence() > g[i].Value.Verdict.precedence() {
					g[i].Value = g[j].Value
				}
			}
		}
		out = append(out, g...)
	}
	SortPolicy(out)
	return out
}

// SortPolicy sorts entries by key, for stable output and diffs.
func SortPolicy(entries []PolicyEntry) {
	slices.SortFunc(entries, func(a, b PolicyEntry) int { return comparePolicyKey(a.Key, b.Key) })
}

func comparePolicyKey(a, b PolicyKey) int {
	return cmp.Or(
		cmp.Compare(a.Endpoint, b.Endpoint),
		cmp.Compare(a.Direction, b.Direction),
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Peer, b.Peer),
		cmp.Compare(a.Port.Len, b.Port.Len),
		cmp.Compare(a.Port.Port, b.Port.Port),
	)
}

// CIDRClass names the precomputed regions a peer address falls in. Policy
// entries for class c use CIDRClassPeer(c) as their peer.
type CIDRClass struct {
	// Any is the class for Kubernetes ipBlock rules, which match by address
	// whatever the peer's identity, pods included. Zero means none.
	Any uint32
	// World is the class for Cilium CIDR rules, which match only peers whose
	// identity is world or a CIDR identity. Zero means none.
	World uint32
}

// CIDREntry maps a peer prefix to its classes for one endpoint and
// direction. Userspace computes the classes so that the longest matching
// prefix carries every rule that applies to it: an ipBlock
// 10.0.0.0/8 except 10.1.0.0/16 becomes 10.0.0.0/8 -> {Any: c} and
// 10.1.0.0/16 -> {} (no class).
type CIDREntry struct {
	Endpoint  EndpointID
	Direction Direction
	Prefix    netip.Prefix
	Class     CIDRClass
}

// Validate reports entries the kernel cannot store.
func (e CIDREntry) Validate() error {
	if e.Endpoint == 0 {
		return fmt.Errorf("cidr entry: endpoint id 0: %w", ErrInvalid)
	}
	if e.Direction > Egress {
		return fmt.Errorf("cidr entry: %v: %w", e.Direction, ErrInvalid)
	}
	if !e.Prefix.IsValid() {
		return fmt.Errorf("cidr entry: invalid prefix: %w", ErrInvalid)
	}
	for _, c := range []uint32{e.Class.Any, e.Class.World} {
		if c&uint32(cidrClassFlag) != 0 {
			return fmt.Errorf("cidr entry %v: class %d out of range: %w", e.Prefix, c, ErrInvalid)
		}
	}
	return nil
}
