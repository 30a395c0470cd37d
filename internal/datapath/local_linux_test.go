package datapath_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rampartsec/rampart/internal/datapath"
)

// retRedirect is TC_ACT_REDIRECT (TCX_REDIRECT), what bpf_redirect_peer
// returns. BPF_PROG_TEST_RUN only reports it; nothing is delivered.
const retRedirect = 7

// MACs of the two endpoints of the local delivery tests and of their host
// veths. The ifindexes exist only in the delivery rows: BPF_PROG_TEST_RUN
// does not perform the redirect.
var (
	srcMAC     = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01}
	srcHostMAC = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x02}
	dstMAC     = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0x01}
	dstHostMAC = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0x02}
)

const srcIfIndex, dstIfIndex = 1001, 1002

// toHost addresses a frame to the device BPF_PROG_TEST_RUN receives it on
// (loopback, whose MAC is all zeros), so that the kernel classifies it as
// PACKET_HOST, as a frame an endpoint sends to its gateway is on its host
// veth.
func toHost(frame []byte) []byte {
	f := slices.Clone(frame)
	clear(f[0:6])
	return f
}

// withTTL sets an IP frame's TTL (IPv4, with the header checksum) or hop
// limit (IPv6).
func withTTL(frame []byte, ttl uint8) []byte {
	f := slices.Clone(frame)
	if binary.BigEndian.Uint16(f[12:]) == etherIPv6 {
		f[14+7] = ttl
		return f
	}
	h := f[14:34]
	h[8] = ttl
	binary.BigEndian.PutUint16(h[10:], 0)
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return f
}

// role names one of the two endpoints of a local delivery case.
type role int

const (
	src role = iota // sends first: its from_endpoint delivers locally
	dst
)

// want is one decision a packet must produce: at which endpoint, in which
// direction, with which verdict.
type want struct {
	ep      role
	dir     datapath.Direction
	verdict datapath.FlowVerdict
	reason  datapath.DropReason
	rule    uint32
	ct      datapath.CTStatus
}

func (w want) event() bool {
	return w.verdict == datapath.FlowDropped || w.verdict == datapath.FlowAudit || w.ct == datapath.CTNew
}

// localPkt is a packet sent by endpoint from through one of its programs.
type localPkt struct {
	from  role
	hook  hook
	frame []byte
	ret   uint32
	// decisions are what the packet must be counted and reported as, in
	// order.
	decisions []want
	// mark is the expected skb->mark.
	mark uint32
}

type localCase struct {
	name string
	// srcCfg and dstCfg change the enforced default configurations.
	srcCfg, dstCfg func(*datapath.EndpointConfig)
	// rows returns the policy of both endpoints.
	rows     func(s, d datapath.EndpointID) []datapath.PolicyEntry
	disabled bool
	pkts     []localPkt
}

// TestLocalDelivery runs crafted packets through two configured endpoints'
// programs and checks when from_endpoint delivers a packet straight to the
// destination (TC_ACT_REDIRECT, with the frame rewritten as routing would)
// and when it leaves it to the host (TCX_NEXT), and that the destination's
// decision is counted and reported exactly as to_endpoint would have: under
// the destination's endpoint, in its ingress direction.
func TestLocalDelivery(t *testing.T) {
	d := mustDatapath(t)
	for _, e := range []datapath.IdentityEntry{
		{Prefix: netip.PrefixFrom(epAddr, 32), Identity: idEP},
		{Prefix: netip.PrefixFrom(epAddr6, 128), Identity: idEP},
		{Prefix: netip.PrefixFrom(podB, 32), Identity: idB},
		{Prefix: netip.PrefixFrom(podB6, 128), Identity: idB},
		{Prefix: netip.PrefixFrom(podC, 32), Identity: idC},
	} {
		if err := d.SetIdentity(e.Prefix, e.Identity); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := d.NewFlowReader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })

	E, I := datapath.Egress, datapath.Ingress
	tcpP, anyP := datapath.ProtoTCP, datapath.ProtoAny
	p80 := datapath.Port(80)
	allowAll := func(s, d datapath.EndpointID) []datapath.PolicyEntry {
		return []datapath.PolicyEntry{
			entry(s, E, anyP, datapath.IdentityAny, datapath.AnyPort, datapath.VerdictAllow, 1),
			entry(d, I, anyP, idEP, datapath.AnyPort, datapath.VerdictAllow, 2),
		}
	}
	allow80 := func(s, d datapath.EndpointID) []datapath.PolicyEntry {
		return []datapath.PolicyEntry{
			entry(s, E, tcpP, idB, p80, datapath.VerdictAllow, 1),
			entry(d, I, tcpP, idEP, p80, datapath.VerdictAllow, 2),
		}
	}
	syn := toHost(ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)))
	srcNew := want{src, E, fwd, 0, 1, datapath.CTNew}
	dstNew := want{dst, I, fwd, 0, 2, datapath.CTNew}

	cases := []localCase{
		{
			name: "allowed tcp is delivered, replies too",
			rows: allow80,
			pkts: []localPkt{
				{from: src, frame: syn, ret: retRedirect, decisions: []want{srcNew, dstNew}},
				{from: dst, frame: toHost(ip(podB, epAddr, 6, tcp(80, 40000, tcpSYN|tcpACK))), ret: retRedirect,
					decisions: []want{{dst, E, fwd, 0, 2, datapath.CTReply}, {src, I, fwd, 0, 1, datapath.CTReply}}},
				{from: src, frame: toHost(ip(epAddr, podB, 6, tcp(40000, 80, tcpACK))), ret: retRedirect,
					decisions: []want{{src, E, fwd, 0, 1, datapath.CTEstablished}, {dst, I, fwd, 0, 2, datapath.CTEstablished}}},
			},
		},
		{
			name: "udp, sctp, icmp and ipv6 are delivered",
			rows: allowAll,
			pkts: []localPkt{
				{from: src, frame: toHost(ip(epAddr, podB, 17, udp(5000, 53))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
				{from: src, frame: toHost(ip(epAddr, podB, 132, sctp(5000, 3868))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
				{from: src, frame: toHost(ip(epAddr, podB, 1, icmpHdr(8, 0, 7))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
				{from: dst, frame: toHost(ip(podB, epAddr, 1, icmpHdr(0, 0, 7))), ret: retRedirect,
					decisions: []want{{dst, E, fwd, 0, 2, datapath.CTReply}, {src, I, fwd, 0, 1, datapath.CTReply}}},
				{from: src, frame: toHost(ip(epAddr6, podB6, 6, tcp(40000, 80, tcpSYN))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
				{from: src, frame: toHost(ip(epAddr6, podB6, 17, udp(5000, 53))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
				{from: src, frame: toHost(ip(epAddr6, podB6, 58, icmpHdr(128, 0, 9))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
				{from: src, frame: toHost(ip(epAddr6, podB6, 132, sctp(5000, 3868))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
			},
		},
		{
			name: "denied at the destination is dropped with its event",
			rows: func(s, d datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{
					entry(s, E, tcpP, idB, datapath.AnyPort, datapath.VerdictAllow, 1),
					entry(d, I, tcpP, idEP, datapath.AnyPort, datapath.VerdictAllow, 2),
					entry(d, I, anyP, datapath.IdentityAny, p80, datapath.VerdictDeny, 3),
				}
			},
			pkts: []localPkt{
				// Deny wins over the allow of another lookup.
				{from: src, frame: syn, ret: retDrop,
					decisions: []want{srcNew, {dst, I, drop, datapath.ReasonPolicyDenied, 3, datapath.CTNew}}},
				// No deny covers port 81, so the allow delivers it.
				{from: src, frame: toHost(ip(epAddr, podB, 6, tcp(40001, 81, tcpSYN))), ret: retRedirect,
					decisions: []want{srcNew, dstNew}},
			},
		},
		{
			name: "default deny at the destination",
			rows: func(s, d datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(s, E, tcpP, idB, p80, datapath.VerdictAllow, 1)}
			},
			pkts: []localPkt{
				{from: src, frame: syn, ret: retDrop,
					decisions: []want{srcNew, {dst, I, drop, datapath.ReasonDefaultDeny, 0, datapath.CTNew}}},
				// A mid-stream segment with no entry at the destination.
				{from: src, frame: toHost(ip(epAddr, podB, 6, tcp(40000, 80, tcpACK))), ret: retDrop,
					decisions: []want{{src, E, fwd, 0, 1, datapath.CTEstablished}, {dst, I, drop, datapath.ReasonCTNoEntry, 0, datapath.CTNew}}},
			},
		},
		{
			name:   "audit at the destination passes and is delivered",
			dstCfg: func(c *datapath.EndpointConfig) { c.Audit = true },
			rows: func(s, d datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(s, E, tcpP, idB, p80, datapath.VerdictAllow, 1)}
			},
			pkts: []localPkt{
				{from: src, frame: syn, ret: retRedirect,
					decisions: []want{srcNew, {dst, I, audV, datapath.ReasonDefaultDeny, 0, datapath.CTNew}}},
				// The audited connection's later packets are forwarded quietly.
				{from: src, frame: toHost(ip(epAddr, podB, 6, tcp(40000, 80, tcpACK))), ret: retRedirect,
					decisions: []want{{src, E, fwd, 0, 1, datapath.CTEstablished}, {dst, I, fwd, 0, 0, datapath.CTEstablished}}},
			},
		},
		{
			name:   "audit at the source is delivered",
			srcCfg: func(c *datapath.EndpointConfig) { c.Audit = true },
			rows: func(s, d datapath.EndpointID) []datapath.PolicyEntry {
				return []datapath.PolicyEntry{entry(d, I, tcpP, idEP, p80, datapath.VerdictAllow, 2)}
			},
			pkts: []localPkt{
				{from: src, frame: syn, ret: retRedirect,
					decisions: []want{{src, E, audV, datapath.ReasonDefaultDeny, 0, datapath.CTNew}, dstNew}},
			},
		},
		{
			// The proxy mark must be seen by the host's routing, so the
			// packet takes the host's path and to_endpoint decides as
			// it always did: nothing was written for the destination.
			name: "proxy redirect at the destination is routed",
			rows: func(s, d datapath.EndpointID) []datapath.PolicyEntry {
				r := entry(d, I, tcpP, idEP, p80, datapath.VerdictRedirect, 2)
				r.Value.ProxyPort = 15006
				return []datapath.PolicyEntry{entry(s, E, tcpP, idB, p80, datapath.VerdictAllow, 1), r}
			},
			pkts: []localPkt{
				{from: src, frame: syn, ret: retPass, decisions: []want{srcNew}},
				{from: dst, hook: toEP, frame: syn, ret: retPass,
					decisions: []want{{dst, I, redir, 0, 2, datapath.CTNew}}, mark: 0x0200 | 15006<<16},
			},
		},
		{
			name: "ttl that forwarding would expire is routed",
			rows: allowAll,
			pkts: []localPkt{
				{from: src, frame: withTTL(syn, 1), ret: retPass, decisions: []want{srcNew}},
				{from: src, frame: withTTL(toHost(ip(epAddr6, podB6, 17, udp(5000, 53))), 1), ret: retPass, decisions: []want{srcNew}},
				{from: src, frame: withTTL(toHost(ip(epAddr, podB, 17, udp(5001, 53))), 2), ret: retRedirect, decisions: []want{srcNew, dstNew}},
			},
		},
		{
			name: "packets routing would not forward are routed",
			rows: allowAll,
			pkts: []localPkt{
				// Not addressed to the host's MAC.
				{from: src, frame: ip(epAddr, podB, 17, udp(5000, 53)), ret: retPass, decisions: []want{srcNew}},
				// A source address that is not the endpoint's own.
				{from: src, frame: toHost(ip(podC, podB, 17, udp(5001, 53))), ret: retPass,
					decisions: []want{{src, E, fwd, 0, 1, datapath.CTNew}}},
				// A destination that is not a local endpoint.
				{from: src, frame: toHost(ip(epAddr, worldV4, 17, udp(5002, 53))), ret: retPass,
					decisions: []want{{src, E, fwd, 0, 1, datapath.CTNew}}},
				// Fragments, which the host may reassemble.
				{from: src, frame: toHost(ip4Frag(epAddr, podB, 17, 0x77, 0, true, udp(5003, 53, make([]byte, 16)...))), ret: retPass,
					decisions: []want{srcNew}},
			},
		},
		{
			name:     "disabled",
			rows:     allowAll,
			disabled: true,
			pkts: []localPkt{
				{from: src, frame: syn, ret: retPass, decisions: []want{srcNew}},
				{from: dst, hook: toEP, frame: syn, ret: retPass, decisions: []want{dstNew}},
			},
		},
	}

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids := [2]datapath.EndpointID{datapath.EndpointID(200 + 2*i), datapath.EndpointID(201 + 2*i)}
			cfgs := [2]datapath.EndpointConfig{
				{Identity: idEP, IfIndex: srcIfIndex, IngressEnforced: true, EgressEnforced: true,
					Addrs: []netip.Addr{epAddr, epAddr6}, MAC: srcMAC, HostMAC: srcHostMAC},
				{Identity: idB, IfIndex: dstIfIndex, IngressEnforced: true, EgressEnforced: true,
					Addrs: []netip.Addr{podB, podB6}, MAC: dstMAC, HostMAC: dstHostMAC},
			}
			for r, f := range []func(*datapath.EndpointConfig){tc.srcCfg, tc.dstCfg} {
				if f != nil {
					f(&cfgs[r])
				}
			}
			var progs [2]*datapath.Programs
			for r := range ids {
				progs[r] = mustPrograms(t, d, ids[r], cfgs[r])
			}
			t.Cleanup(func() {
				for _, id := range ids {
					if err := d.DeleteEndpoint(id); err != nil {
						t.Error(err)
					}
				}
			})
			rows := tc.rows(ids[0], ids[1])
			for _, id := range ids {
				var mine []datapath.PolicyEntry
				for _, e := range rows {
					if e.Key.Endpoint == id {
						mine = append(mine, e)
					}
				}
				if err := d.SyncPolicy(id, mine); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.SetConfig(datapath.Config{EventsPerSecond: datapath.EventsUnlimited, DisableLocalRedirect: tc.disabled}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.SetConfig(datapath.Config{}) })

			type ckey struct {
				ep      datapath.EndpointID
				dir     datapath.Direction
				verdict datapath.FlowVerdict
				reason  datapath.DropReason
			}
			wantCounters := map[ckey]uint64{}
			for j, p := range tc.pkts {
				prog := progs[p.from].FromEndpoint
				if p.hook == toEP {
					prog = progs[p.from].ToEndpoint
				}
				out := make([]byte, len(p.frame)+256)
				ctxOut := make([]byte, 192) // struct __sk_buff
				ret, err := prog.Run(&ebpf.RunOptions{Data: p.frame, DataOut: out, Context: make([]byte, 192), ContextOut: ctxOut})
				if err != nil {
					t.Fatalf("packet %d: run: %v", j, err)
				}
				out = out[:len(p.frame)]
				if ret != p.ret {
					t.Errorf("packet %d: returned %#x, want %#x", j, ret, p.ret)
				}
				if mark := binary.NativeEndian.Uint32(ctxOut[8:]); mark != p.mark {
					t.Errorf("packet %d: skb->mark %#x, want %#x", j, mark, p.mark)
				}
				to := dst
				if p.from == dst {
					to = src
				}
				checkRewrite(t, j, p.frame, out, ret == retRedirect, cfgs[to])
				for _, w := range p.decisions {
					if w.event() {
						checkLocalEvent(t, j, rd, ids[w.ep], w, len(p.frame))
					}
					wantCounters[ckey{ids[w.ep], w.dir, w.verdict, w.reason}]++
				}
				checkNoEvent(t, j, rd)
			}

			counters, err := d.Counters()
			if err != nil {
				t.Fatal(err)
			}
			got := map[ckey]uint64{}
			for _, c := range counters {
				if c.Endpoint == ids[0] || c.Endpoint == ids[1] {
					got[ckey{c.Endpoint, c.Direction, c.Verdict, c.Reason}] += c.Packets
				}
			}
			for k, n := range wantCounters {
				if got[k] != n {
					t.Errorf("counter ep %d %v/%v/%q = %d, want %d", k.ep, k.dir, k.verdict, k.reason, got[k], n)
				}
				delete(got, k)
			}
			for k, n := range got {
				t.Errorf("unexpected counter ep %d %v/%v/%q = %d", k.ep, k.dir, k.verdict, k.reason, n)
			}
		})
	}
}

// checkRewrite checks that a delivered frame was rewritten as routing to
// the endpoint to would have (its MACs, TTL or hop limit one less, a valid
// IPv4 header checksum) and that a frame left to the host is untouched.
func checkRewrite(t *testing.T, j int, in, out []byte, delivered bool, to datapath.EndpointConfig) {
	t.Helper()
	if !delivered {
		if !bytes.Equal(in, out) {
			t.Errorf("packet %d: frame left to the host was changed:\n got %x\nwant %x", j, out, in)
		}
		return
	}
	want := slices.Clone(in)
	copy(want[0:6], to.MAC)
	copy(want[6:12], to.HostMAC)
	if binary.BigEndian.Uint16(in[12:]) == etherIPv6 {
		want[14+7]--
	} else {
		want = withTTL(want, in[14+8]-1)
		if c := csum(out[14:34]); c != 0 {
			t.Errorf("packet %d: IPv4 header checksum does not verify (%#04x)", j, c)
		}
	}
	if !bytes.Equal(out, want) {
		t.Errorf("packet %d: delivered frame\n got %x\nwant %x", j, out, want)
	}
}

func checkLocalEvent(t *testing.T, j int, rd *datapath.FlowReader, ep datapath.EndpointID, w want, length int) {
	t.Helper()
	rd.SetDeadline(time.Now().Add(time.Second))
	f, err := rd.Read()
	if err != nil {
		t.Errorf("packet %d: no event for endpoint %d %v: %v", j, ep, w.dir, err)
		return
	}
	if f.Endpoint != ep || f.Direction != w.dir || f.Verdict != w.verdict || f.Reason != w.reason ||
		f.RuleID != w.rule || f.CTStatus != w.ct || f.Length != uint32(length) {
		t.Errorf("packet %d: event ep=%d %v %v reason=%q rule=%d ct=%v len=%d, want ep=%d %v %v reason=%q rule=%d ct=%v len=%d",
			j, f.Endpoint, f.Direction, f.Verdict, f.Reason, f.RuleID, f.CTStatus, f.Length,
			ep, w.dir, w.verdict, w.reason, w.rule, w.ct, length)
	}
	// The local side of the destination's event is the destination.
	local := f.SrcIdentity
	if f.Direction == datapath.Ingress {
		local = f.DstIdentity
	}
	if w.ep == dst && local != idB || w.ep == src && local != idEP {
		t.Errorf("packet %d: event of endpoint %d has local identity %d", j, ep, local)
	}
}

func checkNoEvent(t *testing.T, j int, rd *datapath.FlowReader) {
	t.Helper()
	rd.SetDeadline(time.Now())
	if f, err := rd.Read(); err == nil {
		t.Errorf("packet %d: unexpected event %+v", j, f)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("packet %d: read event: %v", j, err)
	}
}

// TestLocalDeliveryRows checks the rows SetEndpoint writes for local
// delivery: all or nothing, replaced when the configuration changes, gone
// after StopLocalDelivery and DeleteEndpoint, and found again by a
// datapath that re-opens the pins.
func TestLocalDeliveryRows(t *testing.T) {
	d := mustDatapath(t)
	full := datapath.EndpointConfig{Identity: idEP, IfIndex: 7, Addrs: []netip.Addr{epAddr, epAddr6}, MAC: srcMAC, HostMAC: srcHostMAC}
	tests := []struct {
		name      string
		cfg       func() datapath.EndpointConfig
		wantAddrs []netip.Addr
		wantErr   bool
	}{
		{"full", func() datapath.EndpointConfig { return full }, []netip.Addr{epAddr, epAddr6}, false},
		{"one address fewer", func() datapath.EndpointConfig {
			c := full
			c.Addrs = []netip.Addr{epAddr6}
			return c
		}, []netip.Addr{epAddr6}, false},
		{"no MAC", func() datapath.EndpointConfig { c := full; c.MAC = nil; return c }, nil, false},
		{"no interface", func() datapath.EndpointConfig { c := full; c.IfIndex = 0; return c }, nil, false},
		{"back", func() datapath.EndpointConfig { return full }, []netip.Addr{epAddr, epAddr6}, false},
		{"bad MAC", func() datapath.EndpointConfig { c := full; c.HostMAC = net.HardwareAddr{1, 2, 3}; return c }, []netip.Addr{epAddr, epAddr6}, true},
		{"invalid address", func() datapath.EndpointConfig { c := full; c.Addrs = []netip.Addr{{}}; return c }, []netip.Addr{epAddr, epAddr6}, true},
	}
	const ep = 5
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.SetEndpoint(ep, tt.cfg())
			if (err != nil) != tt.wantErr {
				t.Fatalf("SetEndpoint: %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, datapath.ErrInvalid) {
				t.Errorf("SetEndpoint: %v, want ErrInvalid", err)
			}
			got, err := d.Endpoint(ep)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Addrs, tt.wantAddrs) {
				t.Errorf("addresses %v, want %v", got.Addrs, tt.wantAddrs)
			}
			if len(tt.wantAddrs) > 0 && (!bytes.Equal(got.MAC, srcMAC) || !bytes.Equal(got.HostMAC, srcHostMAC)) {
				t.Errorf("MACs %v %v, want %v %v", got.MAC, got.HostMAC, srcMAC, srcHostMAC)
			}
		})
	}

	// Another endpoint taking an address keeps it when the first lets go.
	other := full
	other.Addrs = []netip.Addr{epAddr}
	if err := d.SetEndpoint(ep+1, other); err != nil {
		t.Fatal(err)
	}
	if err := d.StopLocalDelivery(ep); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Endpoint(ep); err != nil || len(got.Addrs) != 0 {
		t.Errorf("after StopLocalDelivery: addresses %v, %v; want none", got.Addrs, err)
	}
	if got, err := d.Endpoint(ep + 1); err != nil || !slices.Equal(got.Addrs, other.Addrs) {
		t.Errorf("other endpoint's addresses %v, %v; want %v", got.Addrs, err, other.Addrs)
	}

	// A datapath re-opened on the pins knows the rows and removes them.
	d2 := openDatapath(t, d.PinDir())
	defer d2.Close()
	if got, _ := d2.Endpoint(ep + 1); !slices.Equal(got.Addrs, other.Addrs) {
		t.Errorf("re-opened: other endpoint's addresses %v, want %v", got.Addrs, other.Addrs)
	}
	if err := d2.DeleteEndpoint(ep + 1); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Endpoint(ep + 1); err == nil || len(got.Addrs) != 0 {
		t.Errorf("deleted endpoint: %+v, %v", got, err)
	}
}
