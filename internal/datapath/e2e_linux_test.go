package datapath_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/netnsexec"
)

func inNetns(ns netns.NsHandle, fn func() error) error { return netnsexec.Do(ns, fn) }

// newNetns creates an anonymous network namespace that disappears when
// the test's handle and everything inside it are gone.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	ns, err := netnsexec.New()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// testHost is one endpoint: a namespace whose eth0 pairs with a veth on the
// host, addressed in a /24 and a /64 of its own and routed via the host.
type testHost struct {
	ns       netns.NsHandle
	hostLink netlink.Link
	v4, v6   netip.Addr
	// mac is eth0's, the address routing writes as the destination.
	mac net.HardwareAddr
}

func mustHost(t *testing.T, name string, subnet int) *testHost {
	t.Helper()
	ns := newNetns(t)
	hostName := fmt.Sprintf("rdp%s%d", name, os.Getpid()%100000)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s: %v", hostName, err)
	}
	hl, err := netlink.LinkByName(hostName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(hl); err != nil {
			t.Errorf("delete veth %s: %v", hostName, err)
		}
	})

	gw4 := netip.MustParseAddr(fmt.Sprintf("10.250.%d.1", subnet))
	gw6 := netip.MustParseAddr(fmt.Sprintf("fd00:250:%d::1", subnet))
	h := &testHost{
		ns:       ns,
		hostLink: hl,
		v4:       netip.MustParseAddr(fmt.Sprintf("10.250.%d.2", subnet)),
		v6:       netip.MustParseAddr(fmt.Sprintf("fd00:250:%d::2", subnet)),
	}
	addr := func(a netip.Addr, bits int) *netlink.Addr {
		return &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(a, bits)), Flags: unix.IFA_F_NODAD}
	}

	// Host side: gateway addresses and per-interface forwarding, which
	// leaves the host's global forwarding settings untouched.
	for _, a := range []*netlink.Addr{addr(gw4, 24), addr(gw6, 64)} {
		if err := netlink.AddrAdd(hl, a); err != nil {
			t.Fatalf("host %s: add %v: %v", hostName, a, err)
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+hostName+"/forwarding", []byte("1"), 0o644); err != nil {
		t.Fatalf("enable forwarding: %v", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+hostName+"/force_forwarding", []byte("1"), 0o644); err != nil {
		// Before Linux 6.17 IPv6 forwarding is only global: turn it on
		// for the test and put the old value back.
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("enable forwarding: %v", err)
		}
		const all = "/proc/sys/net/ipv6/conf/all/forwarding"
		old, err := os.ReadFile(all)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(all, []byte("1"), 0o644); err != nil {
			t.Fatalf("enable forwarding: %v", err)
		}
		t.Cleanup(func() { os.WriteFile(all, old, 0o644) })
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}

	// Namespace side.
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	h.mac = eth.Attrs().HardwareAddr
	for _, a := range []*netlink.Addr{addr(h.v4, 24), addr(h.v6, 64)} {
		if err := nh.AddrAdd(eth, a); err != nil {
			t.Fatalf("ns %s: add %v: %v", name, a, err)
		}
	}
	for _, l := range []netlink.Link{lo, eth} {
		if err := nh.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, gw := range []netip.Addr{gw4, gw6} {
		r := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw.AsSlice())}
		if err := nh.RouteAdd(r); err != nil {
			t.Fatalf("ns %s: default route via %v: %v", name, gw, err)
		}
	}
	return h
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// serveTCP runs a line echo server on port in h's namespace until the test
// ends, and returns the lines it received on a channel.
func serveTCP(t *testing.T, h *testHost, port int) <-chan string {
	t.Helper()
	var ln net.Listener
	err := inNetns(h.ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					got <- strings.TrimSpace(line)
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return got
}

// serveUDP echoes datagrams on port in h's namespace.
func serveUDP(t *testing.T, h *testHost, port int) {
	t.Helper()
	var pc net.PacketConn
	err := inNetns(h.ns, func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

const (
	okTimeout   = 3 * time.Second
	dropTimeout = 700 * time.Millisecond
)

// tcpConn dials from h to dst:port; the socket belongs to h's namespace.
func tcpConn(h *testHost, dst netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(h.ns, func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
		return err
	})
	return c, err
}

// tcpEcho connects, sends one line and waits for the echo.
func tcpEcho(h *testHost, dst netip.Addr, port int, timeout time.Duration) error {
	c, err := tcpConn(h, dst, port, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return echoLine(c, "hello", timeout)
}

func echoLine(c net.Conn, msg string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != msg {
		return fmt.Errorf("echo %q, want %q", line, msg)
	}
	return nil
}

func udpEcho(h *testHost, dst netip.Addr, port int, timeout time.Duration) error {
	var pc net.PacketConn
	if err := inNetns(h.ns, func() (err error) {
		pc, err = net.ListenPacket("udp", ":0")
		return err
	}); err != nil {
		return err
	}
	defer pc.Close()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(port)))
	if _, err := pc.WriteTo([]byte("ping"), to); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "ping" {
		return fmt.Errorf("udp echo %q", buf[:n])
	}
	return nil
}

// ping sends one ICMP or ICMPv6 echo request from h and waits for the reply.
func ping(h *testHost, dst netip.Addr, timeout time.Duration) error {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, repType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, repType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	if err := inNetns(h.ns, func() (err error) {
		c, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("rampart")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for {
		c.SetReadDeadline(deadline)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && m.Type == repType && e.ID == id {
			return nil
		}
	}
}

// flowLog collects flow events in the background.
type flowLog struct {
	mu    sync.Mutex
	flows []datapath.Flow
}

func collectFlows(t *testing.T, d *datapath.Datapath) *flowLog {
	rd, err := d.NewFlowReader()
	if err != nil {
		t.Fatal(err)
	}
	l := &flowLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := rd.Read()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.flows = append(l.flows, f)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { rd.Close(); <-done })
	return l
}

// find reports whether a flow matching match was read, waiting a little
// for it: the reader collects events in batches.
func (l *flowLog) find(match func(datapath.Flow) bool) bool {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l.seen(match) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (l *flowLog) seen(match func(datapath.Flow) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.flows {
		if match(f) {
			return true
		}
	}
	return false
}

// txPackets returns the packets the host sent out of h's veth, that is
// delivered to h's namespace through the host's forwarding path.
func txPackets(t *testing.T, h *testHost) uint64 {
	t.Helper()
	l, err := netlink.LinkByIndex(h.hostLink.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.TxPackets
}

// TestEndToEnd sends real traffic between two namespaces, once delivered
// locally (bpf_redirect_peer, the default) and once routed through the
// host, and checks in both that map entries alone decide what passes, that
// an entry change applies to the next connection without reloading
// programs, that conntrack keeps and FlushConntrack cuts an established
// connection, that audit mode passes and reports at the destination, and
// that enforcement survives closing and re-opening the datapath; and that
// local delivery does bypass the host's path to the destination veth.
func TestEndToEnd(t *testing.T) {
	requirePrivileged(t)
	for _, tt := range []struct {
		name   string
		routed bool
	}{{"local delivery", false}, {"routed", true}} {
		t.Run(tt.name, func(t *testing.T) { testEndToEnd(t, tt.routed) })
	}
}

func testEndToEnd(t *testing.T, routed bool) {
	a := mustHost(t, "a", 201)
	b := mustHost(t, "b", 202)
	// d is replaced when the test re-opens the pins; cleanup removes
	// whichever is current.
	d := openDatapath(t, testPinDir(t))
	t.Cleanup(func() { removeDatapath(t, d) })
	flows := collectFlows(t, d)
	if err := d.SetConfig(datapath.Config{DisableLocalRedirect: routed}); err != nil {
		t.Fatal(err)
	}

	const (
		epA, epB = datapath.EndpointID(1), datapath.EndpointID(2)
		idA, idB = datapath.Identity(1001), datapath.Identity(1002)
	)
	for _, e := range []datapath.IdentityEntry{
		{Prefix: netip.PrefixFrom(a.v4, 32), Identity: idA},
		{Prefix: netip.PrefixFrom(a.v6, 128), Identity: idA},
		{Prefix: netip.PrefixFrom(b.v4, 32), Identity: idB},
		{Prefix: netip.PrefixFrom(b.v6, 128), Identity: idB},
	} {
		if err := d.SetIdentity(e.Prefix, e.Identity); err != nil {
			t.Fatal(err)
		}
	}
	for _, ep := range []struct {
		id    datapath.EndpointID
		ident datapath.Identity
		h     *testHost
	}{{epA, idA, a}, {epB, idB, b}} {
		if err := d.SetEndpoint(ep.id, endpointConfig(ep.ident, ep.h, false)); err != nil {
			t.Fatal(err)
		}
		if err := d.Attach(ep.id, ep.h.hostLink.Attrs().Index); err != nil {
			t.Fatal(err)
		}
	}

	// A may reach B on TCP 8080, UDP 5353 and ping; B accepts the same from
	// A. Nothing else is allowed in either direction.
	const ruleTCP, ruleUDP, rulePing, rule9090 = 1, 2, 3, 4
	pair := func(proto uint8, port datapath.PortPrefix, rule uint32) []datapath.PolicyEntry {
		return []datapath.PolicyEntry{
			entry(epA, datapath.Egress, proto, idB, port, datapath.VerdictAllow, rule),
			entry(epB, datapath.Ingress, proto, idA, port, datapath.VerdictAllow, rule),
		}
	}
	base := slicesConcat(
		pair(datapath.ProtoTCP, datapath.Port(8080), ruleTCP),
		pair(datapath.ProtoUDP, datapath.Port(5353), ruleUDP),
		pair(datapath.ProtoICMP, datapath.ICMPType(8), rulePing),
		pair(datapath.ProtoICMPv6, datapath.ICMPType(128), rulePing),
	)
	syncAll := func(entries []datapath.PolicyEntry) {
		t.Helper()
		for _, ep := range []datapath.EndpointID{epA, epB} {
			var mine []datapath.PolicyEntry
			for _, e := range entries {
				if e.Key.Endpoint == ep {
					mine = append(mine, e)
				}
			}
			if err := d.SyncPolicy(ep, mine); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncAll(base)

	serveTCP(t, b, 8080)
	got9090 := serveTCP(t, b, 9090)
	serveTCP(t, a, 8080)
	serveUDP(t, b, 5353)

	mustPass := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: want pass, got %v", what, err)
		}
	}
	mustDrop := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want drop, but it passed", what)
		}
	}
	checkBase := func(stage string) {
		t.Helper()
		for _, fam := range []struct {
			name string
			dstB netip.Addr
			dstA netip.Addr
		}{{"ipv4", b.v4, a.v4}, {"ipv6", b.v6, a.v6}} {
			p := stage + " " + fam.name
			mustPass(p+" tcp a->b:8080", tcpEcho(a, fam.dstB, 8080, okTimeout))
			mustPass(p+" udp a->b:5353", udpEcho(a, fam.dstB, 5353, okTimeout))
			mustPass(p+" ping a->b", ping(a, fam.dstB, okTimeout))
			mustDrop(p+" tcp a->b:9090", tcpEcho(a, fam.dstB, 9090, dropTimeout))
			mustDrop(p+" tcp b->a:8080", tcpEcho(b, fam.dstA, 8080, dropTimeout))
			mustDrop(p+" ping b->a", ping(b, fam.dstA, dropTimeout))
		}
	}
	checkBase("initial")

	// Local delivery skips the host's forwarding path, so nothing leaves
	// b's host veth; routed, every request does.
	tx := txPackets(t, b)
	const n = 20
	for i := range n {
		mustPass(fmt.Sprintf("udp a->b:5353 #%d", i), udpEcho(a, b.v4, 5353, okTimeout))
		mustPass(fmt.Sprintf("udp6 a->b:5353 #%d", i), udpEcho(a, b.v6, 5353, okTimeout))
	}
	sent := txPackets(t, b) - tx
	t.Logf("%d packets left b's host veth for %d requests", sent, 2*n)
	if routed && sent < 2*n {
		t.Errorf("routed: %d packets left b's host veth for %d requests", sent, 2*n)
	}
	// A few may be the host's own (neighbour discovery, MLD).
	if !routed && sent >= n/2 {
		t.Errorf("local delivery: %d packets left b's host veth for %d requests; want them delivered past it", sent, 2*n)
	}

	if !flows.find(func(f datapath.Flow) bool {
		return f.Endpoint == epA && f.Direction == datapath.Egress && f.Verdict == datapath.FlowDropped &&
			f.Reason == datapath.ReasonDefaultDeny && f.DstPort == 9090 && f.Dst == b.v4 &&
			f.SrcIdentity == idA && f.DstIdentity == idB
	}) {
		t.Error("no default-deny flow event for a->b:9090")
	}
	if !flows.find(func(f datapath.Flow) bool {
		return f.Endpoint == epB && f.Direction == datapath.Ingress && f.Verdict == datapath.FlowForwarded &&
			f.CTStatus == datapath.CTNew && f.DstPort == 8080 && f.Src == a.v6 && f.RuleID == ruleTCP
	}) {
		t.Error("no new-connection flow event at b ingress for a->b:8080 over IPv6")
	}

	// Allow 9090: the next connection passes with the programs untouched.
	syncAll(slicesConcat(base, pair(datapath.ProtoTCP, datapath.Port(9090), rule9090)))
	mustPass("after allow tcp a->b:9090", tcpEcho(a, b.v4, 9090, okTimeout))
	mustPass("after allow tcp6 a->b:9090", tcpEcho(a, b.v6, 9090, okTimeout))

	// An established connection outlives the removal of its allow...
	conn, err := tcpConn(a, b.v4, 9090, okTimeout)
	if err != nil {
		t.Fatalf("open long-lived connection: %v", err)
	}
	defer conn.Close()
	mustPass("long-lived before removal", echoLine(conn, "one", okTimeout))
	syncAll(base)
	mustDrop("after removal new tcp a->b:9090", tcpEcho(a, b.v4, 9090, dropTimeout))
	mustPass("long-lived after removal", echoLine(conn, "two", okTimeout))

	// ...until the agent flushes the conntrack entries the rule opened.
	for _, ep := range []datapath.EndpointID{epA, epB} {
		n, err := d.FlushConntrack(ep, datapath.CTFilter{RuleID: rule9090})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("flush endpoint %d: no entries for rule %d", ep, rule9090)
		}
	}
	for len(got9090) > 0 {
		<-got9090
	}
	conn.SetWriteDeadline(time.Now().Add(okTimeout))
	io.WriteString(conn, "three\n")
	select {
	case line := <-got9090:
		t.Errorf("server got %q after conntrack flush", line)
	case <-time.After(dropTimeout):
	}
	if !flows.find(func(f datapath.Flow) bool {
		return f.Endpoint == epA && f.Reason == datapath.ReasonCTNoEntry && f.DstPort == 9090
	}) {
		t.Error("no ReasonCTNoEntry flow event for the flushed connection")
	}

	// Audit mode at b: what a sends and b's policy does not allow passes,
	// reported at b's ingress with the reason it would have been dropped.
	const ruleAudit = 5
	syncAll(slicesConcat(base, []datapath.PolicyEntry{
		entry(epA, datapath.Egress, datapath.ProtoTCP, idB, datapath.Port(9090), datapath.VerdictAllow, ruleAudit),
	}))
	mustDrop("enforced tcp a->b:9090", tcpEcho(a, b.v4, 9090, dropTimeout))
	if err := d.SetEndpoint(epB, endpointConfig(idB, b, true)); err != nil {
		t.Fatal(err)
	}
	mustPass("audit tcp a->b:9090", tcpEcho(a, b.v4, 9090, okTimeout))
	mustPass("audit tcp6 a->b:9090", tcpEcho(a, b.v6, 9090, okTimeout))
	if !flows.find(func(f datapath.Flow) bool {
		return f.Endpoint == epB && f.Direction == datapath.Ingress && f.Verdict == datapath.FlowAudit &&
			f.Reason == datapath.ReasonDefaultDeny && f.DstPort == 9090 && f.Src == a.v4 && f.DstIdentity == idB
	}) {
		t.Error("no audit flow event at b's ingress for a->b:9090")
	}
	if err := d.SetEndpoint(epB, endpointConfig(idB, b, false)); err != nil {
		t.Fatal(err)
	}
	mustDrop("enforced again tcp a->b:9090", tcpEcho(a, b.v4, 9090, dropTimeout))
	syncAll(base)

	// Closing the datapath leaves the pinned links enforcing...
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	checkBase("closed")

	// ...and re-opening the pins finds the same state.
	d = openDatapath(t, d.PinDir())
	d2 := d
	eps, err := d2.AttachedEndpoints()
	if err != nil || len(eps) != 2 {
		t.Fatalf("attached endpoints after reopen = %v, %v", eps, err)
	}
	if got, err := d2.PolicyEntries(epA); err != nil || len(got) != 4 {
		t.Fatalf("policy of endpoint %d after reopen: %d entries, %v", epA, len(got), err)
	}
	// Re-attaching replaces the programs in place.
	if err := d2.Attach(epA, a.hostLink.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	checkBase("reopened")

	cnt, err := d2.Counters()
	if err != nil {
		t.Fatal(err)
	}
	var dropped, forwarded uint64
	for _, c := range cnt {
		switch c.Verdict {
		case datapath.FlowDropped:
			dropped += c.Packets
		case datapath.FlowForwarded:
			forwarded += c.Packets
		}
	}
	if dropped == 0 || forwarded == 0 {
		t.Errorf("counters: %d forwarded, %d dropped; want both non-zero", forwarded, dropped)
	}
}

// endpointConfig is the enforced configuration of the endpoint in h, with
// what local delivery to it needs.
func endpointConfig(id datapath.Identity, h *testHost, audit bool) datapath.EndpointConfig {
	return datapath.EndpointConfig{
		Identity: id, IfIndex: h.hostLink.Attrs().Index, IngressEnforced: true, EgressEnforced: true, Audit: audit,
		Addrs: []netip.Addr{h.v4, h.v6}, MAC: h.mac, HostMAC: h.hostLink.Attrs().HardwareAddr,
	}
}

func slicesConcat(parts ...[]datapath.PolicyEntry) []datapath.PolicyEntry {
	var out []datapath.PolicyEntry
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
