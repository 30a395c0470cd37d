package agent

import (
	"testing"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/proxy"
)

// TestTunnelTable checks the kernel rows mesh tunnels get: a peer allowed
// on some TCP port may reach the tunnel port, nothing else is opened, deny
// and CIDR rows add nothing, and at egress only mesh destinations count.
func TestTunnelTable(t *testing.T) {
	rule := &policy.Rule{}
	const client, meshPeer, plainPeer identity.ID = 300, 301, 302
	in := &policy.Table{Direction: policy.Ingress, Enforced: true, Entries: []policy.TableEntry{
		{Peer: client, Proto: policy.TCP, Action: policy.Allow, Lo: 8080, Hi: 8080, Rule: rule},
		{Peer: client, Proto: policy.TCP, Action: policy.Allow, Lo: 9090, Hi: 9090, Rule: rule}, // one tunnel row per peer
		{Peer: plainPeer, Proto: policy.UDP, Action: policy.Allow, Lo: 53, Hi: 53, Rule: rule},
		{Peer: meshPeer, Proto: 0, Action: policy.Deny, Rule: rule},
		{CIDR: &policy.Peer{}, Proto: policy.TCP, Action: policy.Allow, Lo: 443, Hi: 443, Rule: rule},
	}}
	got := tunnelTable(in, map[identity.ID]bool{meshPeer: true}, true)
	if len(in.Entries) != 5 {
		t.Fatalf("tunnelTable modified its input: %d entries", len(in.Entries))
	}
	var tunnels []identity.ID
	for _, e := range got.Entries[len(in.Entries):] {
		if e.Proto != policy.TCP || e.Lo != proxy.HBONEPort || e.Hi != proxy.HBONEPort || e.Action != policy.Allow {
			t.Errorf("unexpected added row %+v", e)
		}
		tunnels = append(tunnels, e.Peer)
	}
	if len(tunnels) != 1 || tunnels[0] != client {
		t.Errorf("ingress tunnel rows for %v, want only the TCP-allowed client %d", tunnels, client)
	}

	eg := &policy.Table{Direction: policy.Egress, Enforced: true, Entries: []policy.TableEntry{
		{Peer: meshPeer, Proto: policy.TCP, Action: policy.Allow, Lo: 80, Hi: 80, Rule: rule},
		{Peer: plainPeer, Proto: policy.TCP, Action: policy.Allow, Lo: 80, Hi: 80, Rule: rule},
	}}
	got = tunnelTable(eg, map[identity.ID]bool{meshPeer: true}, false)
	if n := len(got.Entries) - len(eg.Entries); n != 1 || got.Entries[len(eg.Entries)].Peer != meshPeer {
		t.Errorf("egress tunnel rows: %+v, want one for the mesh peer %d", got.Entries[len(eg.Entries):], meshPeer)
	}

	open := &policy.Table{Direction: policy.Ingress, Entries: nil}
	if got := tunnelTable(open, nil, true); len(got.Entries) != 0 {
		t.Errorf("a table without default deny got rows: %+v", got.Entries)
	}
}
