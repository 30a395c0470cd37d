package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/identity"
)

// Action is what a verdict-table entry does with matching traffic.
type Action uint8

// Actions. Redirect allows the traffic through the L7 proxy, which applies
// the entry's HTTP rules.
const (
	Allow Action = iota + 1
	Deny
	Redirect
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Redirect:
		return "redirect"
	}
	return "?"
}

// AnyPeer in TableEntry.Peer matches every peer.
const AnyPeer identity.ID = 0

// TableEntry is one row of a verdict table: a peer (an identity, any peer,
// or a CIDR), a protocol and port range, and an action. Proto 0 means all
// traffic. This is the form the datapath compiles into its maps; it is kept
// small because broad selectors expand into many rows.
type TableEntry struct {
	Peer   identity.ID
	Proto  Protocol
	Action Action
	Lo, Hi uint16
	// CIDR, when set, makes the entry match by address instead of Peer.
	CIDR *Peer
	// Rule is the rule the entry comes from: its origin and HTTP rules.
	Rule *Rule
}

// Table is the verdict table of one endpoint in one direction.
type Table struct {
	Direction Direction
	// Enforced means default deny: traffic no entry allows is dropped.
	Enforced bool
	Entries  []TableEntry
}

// Table expands the resolved policy of e in direction dir into verdict
// entries. Selectors become the identities they select now; named ports
// become numbers, resolved against e itself at ingress and against each
// possible destination endpoint at egress.
//
// Tables depend only on the identity and, through ingress named ports, on
// the endpoint's declared ports, so endpoints that share both share one
// table. The returned table is shared: do not modify it.
func (r *Repository) Table(e *Endpoint, dir Direction) *Table {
	key := tableKey{id: e.Identity.ID, dir: dir}
	if dir == Ingress {
		key.ports = namedPortsKey(e.NamedPorts)
	}
	if t, ok := r.tables[key]; ok {
		return t
	}
	t := r.table(e, dir)
	if r.tables == nil {
		r.tables = map[tableKey]*Table{}
	}
	r.tables[key] = t
	return t
}

type tableKey struct {
	id    identity.ID
	dir   Direction
	ports string
}

func namedPortsKey(m map[string]NamedPort) string {
	if len(m) == 0 {
		return ""
	}
	names := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%d/%d,", n, m[n].Port, m[n].Proto)
	}
	return b.String()
}

// namedIndex returns the endpoints that declare each port name, built once
// per change of the endpoint set.
func (r *Repository) namedIndex() map[string][]*Endpoint {
	if r.named != nil {
		return r.named
	}
	r.named = map[string][]*Endpoint{}
	for _, e := range r.Endpoints() {
		for name := range e.NamedPorts {
			r.named[name] = append(r.named[name], e)
		}
	}
	return r.named
}

func (r *Repository) table(e *Endpoint, dir Direction) *Table {
	t := &Table{Direction: dir}
	res := r.resolved[e.Identity.ID]
	if res == nil {
		return t
	}
	dp := res.Dir(dir)
	t.Enforced = dp.Enforced
	for _, rule := range dp.Rules {
		act := Allow
		switch {
		case rule.Deny:
			act = Deny
		case len(rule.HTTP) > 0:
			act = Redirect
		}
		base := TableEntry{Action: act, Rule: rule}
		ports := rule.Ports
		if ports == nil {
			ports = []PortRange{{}} // Proto 0: all traffic
		}
		for _, pr := range ports {
			if pr.Name != "" {
				r.expandNamed(t, e, dir, rule, base, pr)
				continue
			}
			ent := base
			ent.Proto, ent.Lo, ent.Hi = pr.Proto, pr.Lo, pr.Hi
			r.expandPeers(t, rule, ent)
		}
	}
	return t
}

func (r *Repository) expandPeers(t *Table, rule *Rule, ent TableEntry) {
	if rule.AllPeers {
		ent.Peer = AnyPeer
		t.Entries = append(t.Entries, ent)
		return
	}
	for i, p := range rule.Peers {
		if p.Selector == nil {
			e := ent
			e.CIDR = &rule.Peers[i]
			t.Entries = append(t.Entries, e)
			continue
		}
		for _, id := range r.selCache.get(*p.Selector) {
			e := ent
			e.Peer = id
			t.Entries = append(t.Entries, e)
		}
	}
}

// expandNamed resolves a named port. At ingress the name belongs to e. At
// egress it belongs to the destination, so the rule yields one entry per
// destination endpoint that declares the name and that the rule's peers
// match: keyed by its identity, or by its address for CIDR peers.
func (r *Repository) expandNamed(t *Table, e *Endpoint, dir Direction, rule *Rule, base TableEntry, pr PortRange) {
	if dir == Ingress {
		np, ok := e.NamedPorts[pr.Name]
		if !ok || np.Proto != pr.Proto {
			return
		}
		ent := base
		ent.Proto, ent.Lo, ent.Hi = pr.Proto, np.Port, np.Port
		r.expandPeers(t, rule, ent)
		return
	}
	for _, dst := range r.namedIndex()[pr.Name] {
		np, ok := dst.NamedPorts[pr.Name]
		if !ok || np.Proto != pr.Proto {
			continue
		}
		ent := base
		ent.Proto, ent.Lo, ent.Hi = pr.Proto, np.Port, np.Port
		if rule.AllPeers {
			ent.Peer = dst.Identity.ID
			t.Entries = append(t.Entries, ent)
			continue
		}
		for _, p := range rule.Peers {
			if p.Selector != nil {
				if p.Selector.Matches(dst.Identity.Labels) {
					x := ent
					x.Peer = dst.Identity.ID
					t.Entries = append(t.Entries, x)
				}
				continue
			}
			for _, a := range dst.IPs {
				if p.matches(PeerInfo{Identity: dst.Identity, Addr: a}) {
					x := ent
					x.CIDR = &Peer{CIDR: netip.PrefixFrom(a, a.BitLen())}
					t.Entries = append(t.Entries, x)
				}
			}
		}
	}
}

func (ent *TableEntry) matches(peer PeerInfo, proto Protocol, port uint16) bool {
	if ent.Proto != 0 && (ent.Proto != proto || port < ent.Lo || port > ent.Hi) {
		return false
	}
	if ent.CIDR != nil {
		return ent.CIDR.matches(peer)
	}
	return ent.Peer == AnyPeer || (peer.Identity != nil && ent.Peer == peer.Identity.ID)
}

// Lookup decides a flow from the table alone, the way the datapath does:
// any matching deny drops; else a plain allow passes; else a redirect
// passes through the proxy; else the default of the direction applies. It
// returns whether the flow passes and whether it goes through the proxy.
func (t *Table) Lookup(peer PeerInfo, proto Protocol, port uint16) (allowed, viaProxy bool) {
	var allow, redirect bool
	for i := range t.Entries {
		ent := &t.Entries[i]
		if !ent.matches(peer, proto, port) {
			continue
		}
		switch ent.Action {
		case Deny:
			return false, false
		case Allow:
			allow = true
		case Redirect:
			redirect = true
		}
	}
	switch {
	case allow:
		return true, false
	case redirect:
		return true, true
	}
	return !t.Enforced, false
}
