package datapath_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rampartsec/rampart/internal/datapath"
)

// Return codes of the TCX programs (TCX_NEXT, TCX_DROP).
const (
	retPass = 0xffffffff
	retDrop = 2
)

// Test addresses. They exist only inside BPF_PROG_TEST_RUN.
var (
	epAddr   = netip.MustParseAddr("10.250.1.10")
	podB     = netip.MustParseAddr("10.250.2.20")
	podC     = netip.MustParseAddr("10.250.3.30")
	worldV4  = netip.MustParseAddr("192.0.2.1")
	epAddr6  = netip.MustParseAddr("fd00:250::10")
	podB6    = netip.MustParseAddr("fd00:250::20")
	idEP     = datapath.Identity(1000)
	idB      = datapath.Identity(2000)
	idC      = datapath.Identity(3000)
	classAny = uint32(5)
	classW   = uint32(6)
)

// hook selects which of the endpoint's programs sees a packet.
type hook int

const (
	fromEP hook = iota // host veth tcx ingress: endpoint egress
	toEP               // host veth tcx egress: endpoint ingress
)

func (h hook) dir() datapath.Direction {
	if h == fromEP {
		return datapath.Egress
	}
	return datapath.Ingress
}

// pkt is one packet of a case and what must happen to it.
type pkt struct {
	hook    hook
	frame   []byte
	verdict datapath.FlowVerdict
	reason  datapath.DropReason
	rule    uint32
	ct      datapath.CTStatus
	// silent marks packets that never produce an event (ARP, ND).
	silent bool
	// mark is the expected skb->mark, checked when non-zero.
	mark uint32
}

func (p pkt) ret() uint32 {
	if p.verdict == datapath.FlowDropped {
		return retDrop
	}
	return retPass
}

// wantsEvent mirrors the default event level: drops, audits and new
// connections.
func (p pkt) wantsEvent() bool {
	if p.silent {
		return false
	}
	return p.verdict == datapath.FlowDropped || p.verdict == datapath.FlowAudit || p.ct == datapath.CTNew
}

type progCase struct {
	name string
	// cfg is the endpoint's configuration; nil leaves the endpoint
	// unconfigured.
	cfg    *datapath.EndpointConfig
	policy func(ep datapath.EndpointID) []datapath.PolicyEntry
	cidr   func(ep datapath.EndpointID) []datapath.CIDREntry
	pkts   []pkt
}

func entry(ep datapath.EndpointID, dir datapath.Direction, proto uint8, peer datapath.Identity,
	port datapath.PortPrefix, v datapath.Verdict, rule uint32) datapath.PolicyEntry {
	return datapath.PolicyEntry{
		Key:   datapath.PolicyKey{Endpoint: ep, Direction: dir, Proto: proto, Peer: peer, Port: port},
		Value: datapath.PolicyValue{Verdict: v, RuleID: rule},
	}
}

func classPeer(t testing.TB, c uint32) datapath.Identity {
	id, err := datapath.CIDRClassPeer(c)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var (
	enforced = &datapath.EndpointConfig{Identity: idEP, IngressEnforced: true, EgressEnforced: true}
	open     = &datapath.EndpointConfig{Identity: idEP}
	audit    = &datapath.EndpointConfig{Identity: idEP, IngressEnforced: true, EgressEnforced: true, Audit: true}
)

const (
	fwd   = datapath.FlowForwarded
	drop  = datapath.FlowDropped
	audV  = datapath.FlowAudit
	redir = datapath.FlowRedirected
)

func progCases(t *testing.T) []progCase {
	E, I := datapath.Egress, datapath.Ingress
	tcpP, udpP, any := datapath.ProtoTCP, datapath.ProtoUDP, datapath.ProtoAny
	p80 := datapath.Port(80)
	return []progCase{
		{
			name: "allowed",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, tcpP, idB, p80, datapath.VerdictAllow, 11)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 11},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpACK)), verdict: fwd, rule: 11, ct: datapath.CTEstablished},
			},
		},
		{
			name: "denied",
			cfg:  open,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, tcpP, idB, p80, datapath.VerdictDeny, 12)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonPolicyDenied, rule: 12},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 81, tcpSYN)), verdict: fwd},
			},
		},
		{
			name: "default deny",
			cfg:  enforced,
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				{hook: toEP, frame: ip(podB, epAddr, 17, udp(5000, 53)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "deny wins across lookups",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{
					entry(ep, E, tcpP, idB, p80, datapath.VerdictAllow, 13),
					entry(ep, E, any, datapath.IdentityAny, datapath.AnyPort, datapath.VerdictDeny, 14),
				}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonPolicyDenied, rule: 14},
			},
		},
		{
			name: "deny wins across port prefixes",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				low, _ := datapath.PortRange(0, 1023)
				out := []datapath.PolicyEntry{entry(ep, E, tcpP, idB, p80, datapath.VerdictAllow, 15)}
				for _, pp := range low {
					out = append(out, entry(ep, E, tcpP, idB, pp, datapath.VerdictDeny, 16))
				}
				return append(out, entry(ep, E, tcpP, idB, datapath.Port(8080), datapath.VerdictAllow, 17))
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonPolicyDenied, rule: 16},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 8080, tcpSYN)), verdict: fwd, rule: 17},
			},
		},
		{
			name: "wildcard identity",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, I, tcpP, datapath.IdentityAny, p80, datapath.VerdictAllow, 18)}
			},
			pkts: []pkt{
				{hook: toEP, frame: ip(worldV4, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 18},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 18},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40000, 443, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "wildcard proto",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, any, idB, datapath.Port(53), datapath.VerdictAllow, 19)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 17, udp(40000, 53)), verdict: fwd, rule: 19},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 53, tcpSYN)), verdict: fwd, rule: 19},
				{hook: fromEP, frame: ip(epAddr, podB, 132, sctp(40000, 53)), verdict: fwd, rule: 19},
				// ICMP has no port, so a wildcard-protocol entry with a port
				// does not match it.
				{hook: fromEP, frame: ip(epAddr, podB, 1, icmpHdr(8, 0, 7)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "port range",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				r, _ := datapath.PortRange(8000, 8999)
				var out []datapath.PolicyEntry
				for _, pp := range r {
					out = append(out, entry(ep, I, udpP, idB, pp, datapath.VerdictAllow, 20))
				}
				return out
			},
			pkts: []pkt{
				{hook: toEP, frame: ip(podB, epAddr, 17, udp(1000, 8000)), verdict: fwd, rule: 20},
				{hook: toEP, frame: ip(podB, epAddr, 17, udp(1000, 8500)), verdict: fwd, rule: 20},
				{hook: toEP, frame: ip(podB, epAddr, 17, udp(1000, 8999)), verdict: fwd, rule: 20},
				{hook: toEP, frame: ip(podB, epAddr, 17, udp(1000, 7999)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				{hook: toEP, frame: ip(podB, epAddr, 17, udp(1000, 9000)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			// ipBlock 10.250.0.0/16 except 10.250.2.0/24: matches pods by
			// address.
			name: "cidr class with except",
			cfg:  enforced,
			cidr: func(ep datapath.EndpointID) []datapath.CIDREntry {
				return []datapath.CIDREntry{
					{Endpoint: ep, Direction: I, Prefix: netip.MustParsePrefix("10.250.0.0/16"), Class: datapath.CIDRClass{Any: classAny}},
					{Endpoint: ep, Direction: I, Prefix: netip.MustParsePrefix("10.250.2.0/24")},
				}
			},
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, I, tcpP, classPeer(t, classAny), p80, datapath.VerdictAllow, 21)}
			},
			pkts: []pkt{
				{hook: toEP, frame: ip(podC, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 21},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				{hook: toEP, frame: ip(worldV4, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			// Cilium toCIDR 10.250.0.0/16 and 192.0.2.0/24: only peers whose
			// identity is world (or a CIDR identity) match.
			name: "world-only cidr",
			cfg:  enforced,
			cidr: func(ep datapath.EndpointID) []datapath.CIDREntry {
				return []datapath.CIDREntry{
					{Endpoint: ep, Direction: E, Prefix: netip.MustParsePrefix("10.250.0.0/16"), Class: datapath.CIDRClass{World: classW}},
					{Endpoint: ep, Direction: E, Prefix: netip.MustParsePrefix("192.0.2.0/24"), Class: datapath.CIDRClass{World: classW}},
				}
			},
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, tcpP, classPeer(t, classW), datapath.AnyPort, datapath.VerdictAllow, 22)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, worldV4, 6, tcp(40000, 443, tcpSYN)), verdict: fwd, rule: 22},
				{hook: fromEP, frame: ip(epAddr, podC, 6, tcp(40000, 443, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "icmp echo",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{
					entry(ep, E, datapath.ProtoICMP, idB, datapath.ICMPType(8), datapath.VerdictAllow, 23),
					entry(ep, E, datapath.ProtoICMPv6, idB, datapath.ICMPTypeCode(128, 0), datapath.VerdictAllow, 24),
				}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 1, icmpHdr(8, 0, 77)), verdict: fwd, rule: 23},
				{hook: toEP, frame: ip(podB, epAddr, 1, icmpHdr(0, 0, 77)), verdict: fwd, rule: 23, ct: datapath.CTReply},
				// A reply to an identifier nobody sent.
				{hook: toEP, frame: ip(podB, epAddr, 1, icmpHdr(0, 0, 78)), verdict: drop, reason: datapath.ReasonCTNoEntry},
				// Timestamp request: a type not allowed.
				{hook: fromEP, frame: ip(epAddr, podB, 1, icmpHdr(13, 0, 77)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				{hook: fromEP, frame: ip(epAddr6, podB6, 58, icmpHdr(128, 0, 9)), verdict: fwd, rule: 24},
				{hook: toEP, frame: ip(podB6, epAddr6, 58, icmpHdr(129, 0, 9)), verdict: fwd, rule: 24, ct: datapath.CTReply},
			},
		},
		{
			name: "arp and neighbour discovery pass under default deny",
			cfg:  enforced,
			pkts: []pkt{
				{hook: fromEP, frame: arp(), verdict: fwd, silent: true},
				{hook: toEP, frame: arp(), verdict: fwd, silent: true},
				{hook: fromEP, frame: ip(epAddr6, podB6, 58, icmpHdr(135, 0, 0)), verdict: fwd, silent: true},
				{hook: toEP, frame: ip(podB6, epAddr6, 58, icmpHdr(136, 0, 0)), verdict: fwd, silent: true},
				{hook: fromEP, frame: ip(epAddr6, netip.MustParseAddr("ff02::2"), 58, icmpHdr(133, 0, 0)), verdict: fwd, silent: true},
				{hook: toEP, frame: ip(podB6, epAddr6, 58, icmpHdr(134, 0, 0)), verdict: fwd, silent: true},
				{hook: toEP, frame: ip(podB6, epAddr6, 58, icmpHdr(137, 0, 0)), verdict: fwd, silent: true},
				// Echo is not neighbour discovery.
				{hook: toEP, frame: ip(podB6, epAddr6, 58, icmpHdr(128, 0, 1)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "ipv6 with extension headers",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, I, tcpP, idB, p80, datapath.VerdictAllow, 25)}
			},
			pkts: []pkt{
				{hook: toEP, frame: ip(podB6, epAddr6, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 25},
				{hook: toEP, frame: ip(podB6, epAddr6, 6, tcp(40001, 80, tcpSYN), hopByHop(), destOpts()), verdict: fwd, rule: 25},
				{hook: toEP, frame: ip(podB6, epAddr6, 6, tcp(40002, 81, tcpSYN), hopByHop()), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			// Headers that the in-place parser leaves to the copying one
			// must give the same ports: IPv4 options shift the L4 header.
			name: "ipv4 with options",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, I, tcpP, idB, p80, datapath.VerdictAllow, 32)}
			},
			pkts: []pkt{
				{hook: toEP, frame: ip4Opts(podB, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 32},
				{hook: toEP, frame: ip4Opts(podB, epAddr, 6, tcp(40000, 80, tcpACK)), verdict: fwd, rule: 32, ct: datapath.CTEstablished},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(80, 40000, tcpSYN|tcpACK)), verdict: fwd, rule: 32, ct: datapath.CTReply},
				{hook: toEP, frame: ip4Opts(podB, epAddr, 6, tcp(40001, 81, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				{hook: toEP, frame: ip4Opts(podB, epAddr, 17, udp(40001, 80)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "sctp",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, datapath.ProtoSCTP, idB, datapath.Port(3868), datapath.VerdictAllow, 26)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 132, sctp(5000, 3868)), verdict: fwd, rule: 26},
				{hook: toEP, frame: ip(podB, epAddr, 132, sctp(3868, 5000)), verdict: fwd, rule: 26, ct: datapath.CTReply},
				{hook: fromEP, frame: ip(epAddr6, podB6, 132, sctp(5000, 3868)), verdict: fwd, rule: 26},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(5000, 3868, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "conntrack reply passes after allowed syn",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, tcpP, idB, p80, datapath.VerdictAllow, 27)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(41000, 80, tcpSYN)), verdict: fwd, rule: 27},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(80, 41000, tcpSYN|tcpACK)), verdict: fwd, rule: 27, ct: datapath.CTReply},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(41000, 80, tcpACK)), verdict: fwd, rule: 27, ct: datapath.CTEstablished},
				// Same peer, a port pair that never opened.
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(80, 41001, tcpSYN|tcpACK)), verdict: drop, reason: datapath.ReasonCTNoEntry},
				// The peer cannot open a connection of its own.
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(41000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				// Both FINs, then the closing entry still carries the last ACK.
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(41000, 80, tcpFIN|tcpACK)), verdict: fwd, rule: 27, ct: datapath.CTEstablished},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(80, 41000, tcpFIN|tcpACK)), verdict: fwd, rule: 27, ct: datapath.CTReply},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(41000, 80, tcpACK)), verdict: fwd, rule: 27, ct: datapath.CTEstablished},
			},
		},
		{
			name: "related icmp error",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, udpP, idB, datapath.Port(53), datapath.VerdictAllow, 28)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 17, udp(42000, 53)), verdict: fwd, rule: 28},
				{hook: toEP, frame: ip(podB, epAddr, 1, icmpHdr(3, 3, 0, quoted(ip(epAddr, podB, 17, udp(42000, 53)))...)), verdict: fwd, rule: 28, ct: datapath.CTRelated},
				{hook: toEP, frame: ip(podB, epAddr, 1, icmpHdr(3, 3, 0, quoted(ip(epAddr, podB, 17, udp(42001, 53)))...)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			// A DNS reply too big for one packet: later fragments carry no
			// UDP header and borrow the ports recorded from the first.
			name: "fragmented reply",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, udpP, idB, datapath.Port(53), datapath.VerdictAllow, 31)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 17, udp(45000, 53)), verdict: fwd, rule: 31},
				{hook: toEP, frame: ip4Frag(podB, epAddr, 17, 0x1234, 0, true, udp(53, 45000, make([]byte, 64)...)), verdict: fwd, rule: 31, ct: datapath.CTReply},
				{hook: toEP, frame: ip4Frag(podB, epAddr, 17, 0x1234, 9, false, make([]byte, 40)), verdict: fwd, rule: 31, ct: datapath.CTReply},
				// A later fragment of a datagram whose head was never seen.
				{hook: toEP, frame: ip4Frag(podB, epAddr, 17, 0x4321, 9, false, make([]byte, 40)), verdict: drop, reason: datapath.ReasonDefaultDeny},
				{hook: fromEP, frame: ip(epAddr6, podB6, 17, udp(45001, 53)), verdict: fwd, rule: 31},
				{hook: toEP, frame: ip(podB6, epAddr6, 17, udp(53, 45001, make([]byte, 64)...), frag6(77, 0, true)), verdict: fwd, rule: 31, ct: datapath.CTReply},
				{hook: toEP, frame: ip(podB6, epAddr6, 17, make([]byte, 40), frag6(77, 9, false)), verdict: fwd, rule: 31, ct: datapath.CTReply},
				{hook: toEP, frame: ip(podB6, epAddr6, 17, make([]byte, 40), frag6(78, 9, false)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "audit mode",
			cfg:  audit,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(ep, E, tcpP, idB, datapath.Port(22), datapath.VerdictDeny, 29)}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(43000, 80, tcpSYN)), verdict: audV, reason: datapath.ReasonDefaultDeny},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(80, 43000, tcpSYN|tcpACK)), verdict: fwd, ct: datapath.CTReply},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(43001, 22, tcpSYN)), verdict: audV, reason: datapath.ReasonPolicyDenied, rule: 29},
				// Invalid packets are dropped even in audit mode.
				{hook: fromEP, frame: ip(epAddr, podB, 6, nil), verdict: drop, reason: datapath.ReasonInvalid},
			},
		},
		{
			name: "redirect to proxy",
			cfg:  enforced,
			policy: func(ep datapath.EndpointID) []datapath.PolicyEntry {
				e := entry(ep, E, tcpP, idB, p80, datapath.VerdictRedirect, 30)
				e.Value.ProxyPort = 15001
				return []datapath.PolicyEntry{e}
			},
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(44000, 80, tcpSYN)), verdict: redir, rule: 30, mark: 0x0200 | 15001<<16},
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(44000, 80, tcpACK)), verdict: redir, rule: 30, ct: datapath.CTEstablished, mark: 0x0200 | 15001<<16},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(80, 44000, tcpSYN|tcpACK)), verdict: fwd, rule: 30, ct: datapath.CTReply},
			},
		},
		{
			name: "unconfigured endpoint fails closed",
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)), verdict: drop, reason: datapath.ReasonNoEndpoint},
			},
		},
		{
			name: "invalid and unsupported",
			cfg:  open,
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 17, []byte{1, 2}), verdict: drop, reason: datapath.ReasonInvalid},
				{hook: fromEP, frame: eth(0x88cc, make([]byte, 46)), verdict: drop, reason: datapath.ReasonUnsupportedL3},
				{hook: fromEP, frame: ip(epAddr6, podB6, 6, []byte{0x9c, 0x40, 0}), verdict: drop, reason: datapath.ReasonInvalid},
			},
		},
	}
}

// TestPrograms runs crafted packets through each case's own endpoint
// programs with BPF_PROG_TEST_RUN and checks the return code, the flow
// event and, at the end of the case, the endpoint's counters.
func TestPrograms(t *testing.T) {
	d := mustDatapath(t)
	for _, e := range []datapath.IdentityEntry{
		{Prefix: netip.PrefixFrom(epAddr, 32), Identity: idEP},
		{Prefix: netip.PrefixFrom(podB, 32), Identity: idB},
		{Prefix: netip.PrefixFrom(podC, 32), Identity: idC},
		{Prefix: netip.PrefixFrom(epAddr6, 128), Identity: idEP},
		{Prefix: netip.PrefixFrom(podB6, 128), Identity: idB},
	} {
		if err := d.SetIdentity(e.Prefix, e.Identity); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetConfig(datapath.Config{EventsPerSecond: datapath.EventsUnlimited}); err != nil {
		t.Fatal(err)
	}
	rd, err := d.NewFlowReader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })

	for i, tc := range progCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ep := datapath.EndpointID(100 + i)
			if tc.cfg != nil {
				if err := d.SetEndpoint(ep, *tc.cfg); err != nil {
					t.Fatal(err)
				}
			}
			if tc.cidr != nil {
				if err := d.SyncCIDR(ep, tc.cidr(ep)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.policy != nil {
				if err := d.SyncPolicy(ep, tc.policy(ep)); err != nil {
					t.Fatal(err)
				}
			}
			progs, err := d.LoadPrograms(ep)
			if err != nil {
				t.Fatal(err)
			}
			defer progs.Close()

			type ckey struct {
				dir     datapath.Direction
				verdict datapath.FlowVerdict
				reason  datapath.DropReason
			}
			wantCounters := map[ckey]uint64{}
			for j, p := range tc.pkts {
				prog := progs.FromEndpoint
				if p.hook == toEP {
					prog = progs.ToEndpoint
				}
				ctxOut := make([]byte, 192) // struct __sk_buff
				ret, err := prog.Run(&ebpf.RunOptions{Data: p.frame, Context: make([]byte, 192), ContextOut: ctxOut})
				if err != nil {
					t.Fatalf("packet %d: run: %v", j, err)
				}
				if ret != p.ret() {
					t.Errorf("packet %d: returned %#x, want %#x (%v %v)", j, ret, p.ret(), p.verdict, p.reason)
				}
				if p.mark != 0 {
					if got := binary.NativeEndian.Uint32(ctxOut[8:]); got != p.mark {
						t.Errorf("packet %d: skb->mark %#x, want %#x", j, got, p.mark)
					}
				}
				checkEvent(t, j, rd, ep, p)
				wantCounters[ckey{p.hook.dir(), p.verdict, p.reason}]++
			}

			counters, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			got := map[ckey]uint64{}
			for _, c := range counters {
				if c.Endpoint == ep {
					got[ckey{c.Direction, c.Verdict, c.Reason}] += c.Packets
					if c.Bytes < c.Packets*14 {
						t.Errorf("counter %+v: bytes below one Ethernet header per packet", c)
					}
				}
			}
			for k, n := range wantCounters {
				if got[k] != n {
					t.Errorf("counter %v/%v/%q = %d, want %d", k.dir, k.verdict, k.reason, got[k], n)
				}
				delete(got, k)
			}
			for k, n := range got {
				t.Errorf("unexpected counter %v/%v/%q = %d", k.dir, k.verdict, k.reason, n)
			}
		})
	}

	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st != (datapath.Stats{}) {
		t.Errorf("stats = %+v, want all zero", st)
	}
}

// checkEvent reads the event packet j must produce, or checks that none is
// waiting.
func checkEvent(t *testing.T, j int, rd *datapath.FlowReader, ep datapath.EndpointID, p pkt) {
	t.Helper()
	if !p.wantsEvent() {
		rd.SetDeadline(time.Now())
		if f, err := rd.Read(); err == nil {
			t.Errorf("packet %d: unexpected event %+v", j, f)
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("packet %d: read event: %v", j, err)
		}
		return
	}
	rd.SetDeadline(time.Now().Add(time.Second))
	f, err := rd.Read()
	if err != nil {
		t.Errorf("packet %d: no event: %v", j, err)
		return
	}
	if f.Endpoint != ep || f.Direction != p.hook.dir() || f.Verdict != p.verdict ||
		f.Reason != p.reason || f.RuleID != p.rule || f.CTStatus != p.ct {
		t.Errorf("packet %d: event ep=%d dir=%v verdict=%v reason=%q rule=%d ct=%v, want ep=%d dir=%v verdict=%v reason=%q rule=%d ct=%v",
			j, f.Endpoint, f.Direction, f.Verdict, f.Reason, f.RuleID, f.CTStatus,
			ep, p.hook.dir(), p.verdict, p.reason, p.rule, p.ct)
	}
	if f.Length != uint32(len(p.frame)) {
		t.Errorf("packet %d: event length %d, want %d", j, f.Length, len(p.frame))
	}
	if time.Since(f.Time).Abs() > time.Minute {
		t.Errorf("packet %d: event time %v is not now", j, f.Time)
	}
	if f.Src.IsValid() && p.reason != datapath.ReasonInvalid {
		local, peer := f.SrcIdentity, f.DstIdentity
		if f.Direction == datapath.Ingress {
			local, peer = peer, local
		}
		if local != idEP && p.reason != datapath.ReasonNoEndpoint {
			t.Errorf("packet %d: local identity %d, want %d", j, local, idEP)
		}
		if peer == 0 {
			t.Errorf("packet %d: peer identity 0", j)
		}
	}
}
