package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/datapath"
)

// verdictFor evaluates rows the way the datapath does for a new flow from
// or to peer: exact peer or wildcard, exact protocol or any, longest port
// prefix, deny wins.
func verdictFor(rows []datapath.PolicyEntry, peer datapath.Identity, proto uint8, port uint16) datapath.Verdict {
	best := datapath.VerdictNone
	for _, e := range datapath.ResolvePrecedence(rows) {
		k := e.Key
		if (k.Peer != peer && k.Peer != datapath.IdentityAny) ||
			(k.Proto != proto && k.Proto != datapath.ProtoAny) || !k.Port.Contains(port) {
			continue
		}
		if e.Value.Verdict == datapath.VerdictDeny || best == datapath.VerdictNone {
			best = e.Value.Verdict
		}
	}
	return best
}

func TestPolicyRows(t *testing.T) {
	for _, n := range []int{minEntries, 10, 1000, 10000, maxEntries} {
		for _, side := range []struct {
			ep   datapath.EndpointID
			dir  datapath.Direction
			peer datapath.Identity
		}{{clientEP, datapath.Egress, serverID}, {serverEP, datapath.Ingress, clientID}} {
			rows, err := policyRows(side.ep, side.dir, side.peer, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != n {
				t.Fatalf("n=%d: %d rows", n, len(rows))
			}
			keys := map[datapath.PolicyKey]bool{}
			peers := map[datapath.Identity]bool{}
			for _, e := range rows {
				if err := e.Validate(); err != nil {
					t.Fatalf("n=%d: %v", n, err)
				}
				if keys[e.Key] {
					t.Fatalf("n=%d: duplicate key %+v", n, e.Key)
				}
				keys[e.Key] = true
				peers[e.Key.Peer] = true
				if e.Key.Endpoint != side.ep || e.Key.Direction != side.dir {
					t.Fatalf("n=%d: row for endpoint %d %v", n, e.Key.Endpoint, e.Key.Direction)
				}
			}
			// Fillers, the wildcard and the benchmark's peer.
			if want := n - fixedRows + 2; len(peers) != want {
				t.Errorf("n=%d: %d distinct peers, want %d", n, len(peers), want)
			}
			for _, p := range benchPorts {
				if v := verdictFor(rows, side.peer, datapath.ProtoTCP, p); v != datapath.VerdictAllow {
					t.Errorf("n=%d %v: port %d is %v, want allow", n, side.dir, p, v)
				}
			}
			if v := verdictFor(rows, side.peer, datapath.ProtoTCP, deniedPort); v != datapath.VerdictNone {
				t.Errorf("n=%d %v: denied port %d is %v, want no match", n, side.dir, deniedPort, v)
			}
		}
	}
	if _, err := policyRows(serverEP, datapath.Ingress, clientID, minEntries-1); err == nil {
		t.Error("a policy smaller than its fixed rows was accepted")
	}
}

func TestIptablesRules(t *testing.T) {
	const n = 1000
	rows, err := policyRows(serverEP, datapath.Ingress, clientID, n)
	if err != nil {
		t.Fatal(err)
	}
	// The first rule that the benchmark's connections match.
	firstMatch := func(rules []string) int {
		return slices.IndexFunc(rules, func(r string) bool {
			return strings.Contains(r, "-s "+clientAddr.String()+"/32") && strings.Contains(r, "--dport ")
		})
	}
	tests := []struct {
		name   string
		where  placement
		lo, hi int
	}{
		{name: "middle", where: placeMiddle, lo: n/2 - fixedRows, hi: n/2 + fixedRows},
		{name: "last", where: placeLast, lo: n - fixedRows, hi: n - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := iptablesRules(rows, serverAddr, tt.where)
			if err != nil {
				t.Fatal(err)
			}
			if len(rules) != n {
				t.Fatalf("%d rules, want %d", len(rules), n)
			}
			if i := firstMatch(rules); i < tt.lo || i > tt.hi {
				t.Errorf("first rule for the client at %d, want in [%d, %d]", i, tt.lo, tt.hi)
			}
			for _, p := range benchPorts {
				want := "-s 10.250.1.2/32 -d 10.250.2.2/32 -p tcp --dport " + strconv.Itoa(int(p)) + " -j ACCEPT"
				if !slices.ContainsFunc(rules, func(r string) bool { return strings.HasSuffix(r, want) }) {
					t.Errorf("no rule %q", want)
				}
			}
			set := iptablesRuleset(rules)
			if !strings.HasPrefix(set, "*filter\n") || !strings.HasSuffix(set, "COMMIT\n") ||
				!strings.Contains(set, ":FORWARD DROP") ||
				strings.Index(set, "--ctstate RELATED,ESTABLISHED") > strings.Index(set, rules[0]) {
				t.Errorf("ruleset does not default to DROP with conntrack first:\n%.400s", set)
			}
		})
	}
}

func TestPeerAddrDistinct(t *testing.T) {
	seen := map[string]datapath.Identity{}
	for _, e := range ipcacheRows(maxEntries, maxTopologyAddrs) {
		a := e.Prefix.Addr().String()
		if id, ok := seen[a]; ok {
			t.Fatalf("%s has identities %d and %d", a, id, e.Identity)
		}
		seen[a] = e.Identity
	}
}
