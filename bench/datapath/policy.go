package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/rampartsec/rampart/internal/datapath"
)

// Addresses of the two endpoints. Each has a /24 of its own inside
// 10.250.0.0/16, so every packet between them is routed.
var (
	clientAddr = netip.MustParseAddr("10.250.1.2")
	serverAddr = netip.MustParseAddr("10.250.2.2")
)

// maxTopologyAddrs is how many topologies endpointAddrs can address below
// the filler pods' 10.250.128.0/17.
const maxTopologyAddrs = 63

// endpointAddrs returns the client and server addresses of topology k:
// clientAddr and serverAddr for k = 0, then 10.250.(2k+1).2 and
// 10.250.(2k+2).2. The b topologies, which share the datapath's maps like
// the endpoints of one node, each need addresses of their own: a node's
// endpoint addresses are unique, and the datapath delivers between local
// endpoints by address.
func endpointAddrs(k int) (client, server netip.Addr) {
	return netip.AddrFrom4([4]byte{10, 250, byte(2*k + 1), 2}), netip.AddrFrom4([4]byte{10, 250, byte(2*k + 2), 2})
}

// Ports of the benchmark traffic. Policy allows the client to reach
// iperfPort and echoPort on the server; deniedPort is served too but no
// policy allows it, so a connection to it proves enforcement is on.
const (
	iperfPort  uint16 = 5201
	echoPort   uint16 = 7001
	deniedPort uint16 = 7002
)

var benchPorts = []uint16{iperfPort, echoPort}

// Endpoint ids and identities of the two endpoints.
//
// Filler peers get the even identities 256, 258, ... spread over
// peerSpan; the endpoints get odd identities in the middle of that range,
// so the benchmark's own rows sit among the filler rows in the policy trie
// instead of at one edge of it, where lookups could be shorter than usual.
const (
	clientEP = datapath.EndpointID(1)
	serverEP = datapath.EndpointID(2)

	peerSpan                     = 60000
	firstPeer  datapath.Identity = datapath.IdentityMinCluster
	clientID                     = firstPeer + peerSpan/2 + 1
	serverID                     = clientID + 2
	maxEntries                   = peerSpan / 2
)

// fixedRows is how many rows of every generated policy are not fillers:
// the allows for benchPorts, three other rows for the same peer and one
// wildcard-peer row.
var fixedRows = len(benchPorts) + 4

// minEntries is the smallest policy size that still has fillers.
var minEntries = fixedRows + 2

// fillerPeer returns the identity of filler j of f, spread evenly over
// the identity span.
func fillerPeer(j, f int) datapath.Identity {
	return firstPeer + datapath.Identity(2*(j*(peerSpan/2)/f))
}

// peerAddr is the pod address that the ipcache gives filler identity id:
// one address per even identity in 10.250.128.0/17, never assigned to an
// interface, so no benchmark packet goes there.
func peerAddr(id datapath.Identity) netip.Addr {
	n := uint32(id-firstPeer) / 2
	return netip.AddrFrom4([4]byte{10, 250, 128 + byte(n>>8), byte(n)})
}

// commonPorts are the service ports that filler rows use most.
var commonPorts = []uint16{80, 443, 8080, 8443, 9090, 5432, 3306, 6379, 9092, 2379, 27017, 5672, 8000, 3000, 9200, 11211}

// policyRows returns exactly n policy rows for endpoint ep in direction
// dir: the allows that the benchmark traffic to or from peer matches, and
// n-fixedRows filler rows, each with its own peer identity and a port,
// protocol and verdict drawn from a deterministic mix resembling compiled
// NetworkPolicies (mostly single TCP ports, some UDP, a few port ranges,
// allow-all-ports and denies). No filler row matches the benchmark
// traffic, and nothing at all allows deniedPort.
func policyRows(ep datapath.EndpointID, dir datapath.Direction, peer datapath.Identity, n int) ([]datapath.PolicyEntry, error) {
	if n < minEntries || n > maxEntries {
		return nil, fmt.Errorf("policy size %d out of range [%d, %d]", n, minEntries, maxEntries)
	}
	rule := uint32(dir)*1_000_000 + 1
	row := func(proto uint8, p datapath.Identity, port datapath.PortPrefix, v datapath.Verdict) datapath.PolicyEntry {
		rule++
		return datapath.PolicyEntry{
			Key:   datapath.PolicyKey{Endpoint: ep, Direction: dir, Proto: proto, Peer: p, Port: port},
			Value: datapath.PolicyValue{Verdict: v, RuleID: rule},
		}
	}
	var rows []datapath.PolicyEntry
	// Other rows for the same peer first, then the ones the traffic
	// matches, so that in iptables order the matches close the group.
	rows = append(rows,
		row(datapath.ProtoTCP, peer, datapath.Port(80), datapath.VerdictAllow),
		row(datapath.ProtoTCP, peer, datapath.Port(443), datapath.VerdictAllow),
		row(datapath.ProtoUDP, peer, datapath.Port(53), datapath.VerdictAllow),
	)
	for _, p := range benchPorts {
		rows = append(rows, row(datapath.ProtoTCP, peer, datapath.Port(p), datapath.VerdictAllow))
	}
	// Metrics scraping from anywhere, a common wildcard rule.
	rows = append(rows, row(datapath.ProtoTCP, datapath.IdentityAny, datapath.Port(9100), datapath.VerdictAllow))

	rng := rand.New(rand.NewPCG(uint64(n), uint64(dir)))
	f := n - fixedRows
	for j := range f {
		p := fillerPeer(j, f)
		verdict := datapath.VerdictAllow
		if rng.IntN(100) < 3 {
			verdict = datapath.VerdictDeny
		}
		switch k := rng.IntN(100); {
		case k < 3: // all traffic from the peer
			rows = append(rows, row(datapath.ProtoAny, p, datapath.AnyPort, verdict))
		case k < 6: // an aligned port range, 2^4..2^8 ports
			bits := 4 + rng.IntN(5)
			base := uint16(1024+rng.IntN(30000)) &^ (1<<bits - 1)
			rows = append(rows, row(datapath.ProtoTCP, p, datapath.PortPrefix{Port: base, Len: uint8(16 - bits)}, verdict))
		default:
			proto := datapath.ProtoTCP
			if rng.IntN(100) < 12 {
				proto = datapath.ProtoUDP
			}
			port := commonPorts[rng.IntN(len(commonPorts))]
			if rng.IntN(100) < 40 {
				port = uint16(1024 + rng.IntN(31744))
			}
			rows = append(rows, row(proto, p, datapath.Port(port), verdict))
		}
	}
	return rows, nil
}

// ipcacheRows maps the endpoints of the first topologies topologies
// (endpointAddrs) and every filler peer of a policy of size n to their
// addresses.
func ipcacheRows(n, topologies int) []datapath.IdentityEntry {
	var out []datapath.IdentityEntry
	for k := range max(topologies, 1) {
		c, s := endpointAddrs(k)
		out = append(out,
			datapath.IdentityEntry{Prefix: netip.PrefixFrom(c, 32), Identity: clientID},
			datapath.IdentityEntry{Prefix: netip.PrefixFrom(s, 32), Identity: serverID})
	}
	f := n - fixedRows
	for j := range f {
		id := fillerPeer(j, f)
		out = append(out, datapath.IdentityEntry{Prefix: netip.PrefixFrom(peerAddr(id), 32), Identity: id})
	}
	return out
}

// placement says where the rules that the benchmark traffic matches sit in
// the iptables chain.
type placement int

const (
	// placeMiddle puts them after half of the other rules: the average
	// position of a peer's rules in a linear chain.
	placeMiddle placement = iota
	// placeLast puts them after every other rule: each new connection
	// traverses all N rules.
	placeLast
)

// iptablesRules renders the server's ingress rows as the FORWARD rules an
// iptables NetworkPolicy implementation would evaluate for traffic to dst,
// one rule per row, in the order that placement asks for.
func iptablesRules(rows []datapath.PolicyEntry, dst netip.Addr, where placement) ([]string, error) {
	// rows is policyRows' output: the peer's group, the wildcard, fillers.
	group, wildcard, fillers := rows[:fixedRows-1], rows[fixedRows-1:fixedRows], rows[fixedRows:]
	var ordered []datapath.PolicyEntry
	switch where {
	case placeMiddle:
		half := len(fillers) / 2
		ordered = append(append(append(append(ordered, fillers[:half]...), group...), fillers[half:]...), wildcard...)
	case placeLast:
		ordered = append(append(append(ordered, fillers...), wildcard...), group...)
	default:
		return nil, fmt.Errorf("unknown placement %d", where)
	}
	out := make([]string, 0, len(ordered))
	for _, e := range ordered {
		r, err := iptablesRule(e, dst)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func iptablesRule(e datapath.PolicyEntry, dst netip.Addr) (string, error) {
	var b strings.Builder
	b.WriteString("-A FORWARD")
	if e.Key.Peer != datapath.IdentityAny {
		fmt.Fprintf(&b, " -s %s/32", peerAddrOf(e.Key.Peer))
	}
	fmt.Fprintf(&b, " -d %s/32", dst)
	switch e.Key.Proto {
	case datapath.ProtoAny:
		if e.Key.Port.Len != 0 {
			return "", fmt.Errorf("rule %d: any-protocol row with a port has no single iptables rule", e.Value.RuleID)
		}
	case datapath.ProtoTCP:
		b.WriteString(" -p tcp")
	case datapath.ProtoUDP:
		b.WriteString(" -p udp")
	default:
		return "", fmt.Errorf("rule %d: protocol %d not rendered", e.Value.RuleID, e.Key.Proto)
	}
	if pp := e.Key.Port; pp.Len == 16 {
		fmt.Fprintf(&b, " --dport %d", pp.Port)
	} else if pp.Len > 0 {
		fmt.Fprintf(&b, " --dport %d:%d", pp.Port, uint32(pp.Port)+1<<(16-uint32(pp.Len))-1)
	}
	switch e.Value.Verdict {
	case datapath.VerdictAllow:
		b.WriteString(" -j ACCEPT")
	case datapath.VerdictDeny:
		b.WriteString(" -j DROP")
	default:
		return "", fmt.Errorf("rule %d: verdict %v not rendered", e.Value.RuleID, e.Value.Verdict)
	}
	return b.String(), nil
}

// peerAddrOf returns the address of a peer identity: the client's own, or
// a filler pod's.
func peerAddrOf(id datapath.Identity) netip.Addr {
	switch id {
	case clientID:
		return clientAddr
	case serverID:
		return serverAddr
	}
	return peerAddr(id)
}

// iptablesRuleset is an iptables-restore input for the filter table:
// FORWARD defaults to DROP, accepts established and related traffic first
// (as kube-router and Calico do), then evaluates rules in order.
func iptablesRuleset(rules []string) string {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	b.WriteString("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	for _, r := range rules {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
