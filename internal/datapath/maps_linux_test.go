package datapath_test

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rampartsec/rampart/internal/datapath"
)

// run sends one frame through prog and returns its return code.
func run(t *testing.T, prog *ebpf.Program, frame []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret
}

func mustPrograms(t *testing.T, d *datapath.Datapath, ep datapath.EndpointID, cfg datapath.EndpointConfig) *datapath.Programs {
	t.Helper()
	if err := d.SetEndpoint(ep, cfg); err != nil {
		t.Fatal(err)
	}
	p, err := d.LoadPrograms(ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestIdentities(t *testing.T) {
	d := mustDatapath(t)
	set := []datapath.IdentityEntry{
		{Prefix: netip.MustParsePrefix("10.250.0.0/16"), Identity: datapath.IdentityCIDRScope | 1},
		{Prefix: netip.MustParsePrefix("10.250.1.10/32"), Identity: 1000},
		{Prefix: netip.MustParsePrefix("fd00:250::/64"), Identity: datapath.IdentityCIDRScope | 2},
		{Prefix: netip.MustParsePrefix("::ffff:10.250.9.0/120"), Identity: 1009}, // stored as 10.250.9.0/24
	}
	if err := d.SetIdentities(set); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr netip.Addr
		want datapath.Identity
	}{
		{netip.MustParseAddr("10.250.1.10"), 1000},
		{netip.MustParseAddr("10.250.1.11"), datapath.IdentityCIDRScope | 1},
		{netip.MustParseAddr("10.250.9.1"), 1009},
		{netip.MustParseAddr("::ffff:10.250.1.10"), 1000},
		{netip.MustParseAddr("fd00:250::99"), datapath.IdentityCIDRScope | 2},
		{netip.MustParseAddr("192.0.2.1"), datapath.IdentityWorld},
		// An IPv6 address that starts with the bytes of 10.250.1.10 never
		// matches the IPv4 prefix.
		{netip.AddrFrom16([16]byte{10, 250, 1, 10}), datapath.IdentityWorld},
	}
	for _, tt := range tests {
		got, err := d.LookupIdentity(tt.addr)
		if err != nil || got != tt.want {
			t.Errorf("LookupIdentity(%v) = %d, %v; want %d", tt.addr, got, err, tt.want)
		}
	}
	dump, err := d.Identities()
	if err != nil || len(dump) != len(set) {
		t.Fatalf("Identities() = %v, %v", dump, err)
	}
	if err := d.DeleteIdentity(netip.MustParsePrefix("10.250.1.10/32")); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteIdentity(netip.MustParsePrefix("10.250.1.10/32")); err != nil {
		t.Errorf("deleting a missing identity: %v", err)
	}
	if got, _ := d.LookupIdentity(netip.MustParseAddr("10.250.1.10")); got != datapath.IdentityCIDRScope|1 {
		t.Errorf("after delete: %d", got)
	}
	if err := d.SetIdentity(netip.Prefix{}, 1); !errors.Is(err, datapath.ErrInvalid) {
		t.Errorf("invalid prefix: err = %v", err)
	}
}

func TestSyncPolicy(t *testing.T) {
	d := mustDatapath(t)
	const ep = 7
	k := func(port uint16) datapath.PolicyKey {
		return datapath.PolicyKey{Endpoint: ep, Direction: datapath.Ingress, Proto: datapath.ProtoTCP, Peer: 300, Port: datapath.Port(port)}
	}
	allow := datapath.PolicyValue{Verdict: datapath.VerdictAllow, RuleID: 1}
	first := []datapath.PolicyEntry{{Key: k(80), Value: allow}, {Key: k(443), Value: allow}}
	if err := d.SyncPolicy(ep, first); err != nil {
		t.Fatal(err)
	}
	other := []datapath.PolicyEntry{{Key: datapath.PolicyKey{Endpoint: ep + 1, Proto: 6, Peer: 1, Port: datapath.AnyPort}, Value: allow}}
	if err := d.SyncPolicy(ep+1, other); err != nil {
		t.Fatal(err)
	}
	second := []datapath.PolicyEntry{{Key: k(443), Value: datapath.PolicyValue{Verdict: datapath.VerdictDeny, RuleID: 2}}, {Key: k(8443), Value: allow}}
	if err := d.SyncPolicy(ep, second); err != nil {
		t.Fatal(err)
	}
	got, err := d.PolicyEntries(ep)
	if err != nil {
		t.Fatal(err)
	}
	if want := datapath.ResolvePrecedence(second); !slices.Equal(got, want) {
		t.Errorf("after second sync:\n got  %v\n want %v", got, want)
	}
	if got, _ := d.PolicyEntries(ep + 1); !slices.Equal(got, other) {
		t.Errorf("sync of endpoint %d touched endpoint %d: %v", ep, ep+1, got)
	}
	if err := d.SyncPolicy(ep, []datapath.PolicyEntry{other[0]}); !errors.Is(err, datapath.ErrInvalid) {
		t.Errorf("entry for another endpoint: err = %v", err)
	}
}

// TestConntrackLifecycle checks the dump, expiry by timeout, GC and the
// flush filters.
func TestConntrackLifecycle(t *testing.T) {
	d := mustDatapath(t)
	if err := d.SetConfig(datapath.Config{UDPTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetIdentity(netip.PrefixFrom(podB, 32), idB); err != nil {
		t.Fatal(err)
	}
	const ep = 3
	p := mustPrograms(t, d, ep, *enforced)
	if err := d.SyncPolicy(ep, []datapath.PolicyEntry{
		entry(ep, datapath.Egress, datapath.ProtoUDP, idB, datapath.AnyPort, datapath.VerdictAllow, 41),
		entry(ep, datapath.Egress, datapath.ProtoTCP, idB, datapath.AnyPort, datapath.VerdictAllow, 42),
	}); err != nil {
		t.Fatal(err)
	}
	run(t, p.FromEndpoint, ip(epAddr, podB, 17, udp(46000, 53)))
	run(t, p.FromEndpoint, ip(epAddr, podB, 6, tcp(46001, 80, tcpSYN)))
	run(t, p.FromEndpoint, ip(epAddr, podB, 6, tcp(46002, 81, tcpSYN)))

	var entries []datapath.CTEntry
	if err := d.Conntrack(func(e datapath.CTEntry) bool { entries = append(entries, e); return true }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("conntrack has %d entries, want 3: %+v", len(entries), entries)
	}
	for _, e := range entries {
		if e.Endpoint != ep || e.Direction != datapath.Egress || e.Src.Addr() != epAddr || e.Dst.Addr() != podB ||
			e.PeerIdentity != idB || e.PacketsFwd != 1 || e.Peer() != podB {
			t.Errorf("entry %+v", e)
		}
		if e.Proto == datapath.ProtoTCP && (e.TCPState != datapath.TCPSynSent || e.RuleID != 42) {
			t.Errorf("tcp entry %+v: want SYN_SENT and rule 42", e)
		}
		if left := time.Until(e.Expires); left <= 0 || left > 2*time.Minute {
			t.Errorf("entry %v expires in %v", e.Dst, left)
		}
	}

	n, err := d.FlushConntrack(ep, datapath.CTFilter{Proto: datapath.ProtoTCP, Port: 81})
	if err != nil || n != 1 {
		t.Errorf("flush port 81: %d, %v; want 1", n, err)
	}
	if n, _ := d.FlushConntrack(ep+1, datapath.CTFilter{}); n != 0 {
		t.Errorf("flush of another endpoint removed %d entries", n)
	}

	// The UDP entry times out after a second: its reply is then new, and
	// ingress is default deny.
	if ret := run(t, p.ToEndpoint, ip(podB, epAddr, 17, udp(53, 46000))); ret != retPass {
		t.Errorf("reply before timeout: %#x", ret)
	}
	time.Sleep(2100 * time.Millisecond)
	if n, err := d.GCConntrack(); err != nil || n != 1 {
		t.Errorf("GC removed %d, %v; want the expired UDP entry", n, err)
	}
	if ret := run(t, p.ToEndpoint, ip(podB, epAddr, 17, udp(53, 46000))); ret != retDrop {
		t.Errorf("reply after timeout: %#x, want drop", ret)
	}
	n, err = d.FlushConntrack(ep, datapath.CTFilter{})
	if err != nil || n != 1 {
		t.Errorf("final flush: %d, %v; want the TCP entry", n, err)
	}
}

// TestEvents checks the event levels and the per-CPU rate limit.
func TestEvents(t *testing.T) {
	d := mustDatapath(t)
	const ep = 4
	p := mustPrograms(t, d, ep, *enforced)
	if err := d.SyncPolicy(ep, []datapath.PolicyEntry{
		entry(ep, datapath.Egress, datapath.ProtoTCP, datapath.IdentityAny, datapath.Port(80), datapath.VerdictAllow, 51),
	}); err != nil {
		t.Fatal(err)
	}
	rd, err := d.NewFlowReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	drain := func() int {
		n := 0
		for {
			rd.SetDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := rd.Read(); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatal(err)
				}
				return n
			}
			n++
		}
	}
	allowed := func(i int) []byte { return ip(epAddr, podB, 6, tcp(uint16(47000+i), 80, tcpSYN)) }
	denied := ip(epAddr, podB, 6, tcp(47000, 81, tcpSYN))

	tests := []struct {
		name            string
		cfg             datapath.Config
		allowed, denied int
		maxEvents       int
		minEvents       int
	}{
		{name: "default reports new connections and drops", cfg: datapath.Config{EventsPerSecond: datapath.EventsUnlimited}, allowed: 3, denied: 2, minEvents: 5, maxEvents: 5},
		{name: "drops only", cfg: datapath.Config{Events: datapath.EventsDrops, EventsPerSecond: datapath.EventsUnlimited}, allowed: 3, denied: 2, minEvents: 2, maxEvents: 2},
		{name: "none", cfg: datapath.Config{Events: datapath.EventsNone}, allowed: 3, denied: 2},
		// One event per second per CPU with a bucket of one: at most one
		// event per CPU the test happened to run on.
		{name: "rate limited", cfg: datapath.Config{EventsPerSecond: 1, EventsBurst: 1}, denied: 20, minEvents: 1, maxEvents: runtime.NumCPU()},
	}
	base := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.SetConfig(tt.cfg); err != nil {
				t.Fatal(err)
			}
			before, _ := d.Stats()
			for i := 0; i < tt.allowed; i++ {
				run(t, p.FromEndpoint, allowed(base+i))
			}
			base += tt.allowed
			for i := 0; i < tt.denied; i++ {
				run(t, p.FromEndpoint, denied)
			}
			n := drain()
			if n < tt.minEvents || n > tt.maxEvents {
				t.Errorf("%d events, want %d..%d", n, tt.minEvents, tt.maxEvents)
			}
			after, _ := d.Stats()
			if tt.cfg.EventsPerSecond == 1 && after.EventsRateLimited-before.EventsRateLimited < uint64(tt.denied-n) {
				t.Errorf("rate limited %d, want at least %d", after.EventsRateLimited-before.EventsRateLimited, tt.denied-n)
			}
		})
	}
}

// TestVerifierBudget keeps the programs far from the verifier's limits, so
// a change that makes verification explode fails here first. Each endpoint
// loads its own copy, so load time is also attach latency.
func TestVerifierBudget(t *testing.T) {
	d := mustDatapath(t)
	start := time.Now()
	p := mustPrograms(t, d, 1, *enforced)
	elapsed := time.Since(start)
	for name, prog := range map[string]*ebpf.Program{"from_endpoint": p.FromEndpoint, "to_endpoint": p.ToEndpoint} {
		info, err := prog.Info()
		if err != nil {
			t.Fatal(err)
		}
		n, ok := info.VerifiedInstructions()
		if !ok {
			t.Skip("kernel does not report verified instructions")
		}
		t.Logf("%s: %d verified instructions", name, n)
		if n > 200_000 {
			t.Errorf("%s: %d verified instructions, budget 200000 of the kernel's 1000000", name, n)
		}
	}
	t.Logf("load of both programs took %v", elapsed)
}

func TestDeleteEndpoint(t *testing.T) {
	d := mustDatapath(t)
	const ep = 9
	p := mustPrograms(t, d, ep, *open)
	if err := d.SyncPolicy(ep, []datapath.PolicyEntry{entry(ep, datapath.Egress, 6, 1, datapath.AnyPort, datapath.VerdictAllow, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := d.SyncCIDR(ep, []datapath.CIDREntry{{Endpoint: ep, Prefix: netip.MustParsePrefix("10.0.0.0/8"), Class: datapath.CIDRClass{Any: 1}}}); err != nil {
		t.Fatal(err)
	}
	run(t, p.FromEndpoint, ip(epAddr, podB, 17, udp(1, 2)))
	if err := d.DeleteEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Endpoint(ep); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("endpoint config survived: %v", err)
	}
	pol, _ := d.PolicyEntries(ep)
	cidr, _ := d.CIDREntries(ep)
	cnt, _ := d.Counters()
	ct := 0
	d.Conntrack(func(datapath.CTEntry) bool { ct++; return true })
	if len(pol) != 0 || len(cidr) != 0 || len(cnt) != 0 || ct != 0 {
		t.Errorf("left behind: %d policy, %d cidr, %d counters, %d conntrack", len(pol), len(cidr), len(cnt), ct)
	}
	// Its programs now fail closed.
	if ret := run(t, p.FromEndpoint, ip(epAddr, podB, 17, udp(1, 2))); ret != retDrop {
		t.Errorf("deleted endpoint passed traffic: %#x", ret)
	}
}
