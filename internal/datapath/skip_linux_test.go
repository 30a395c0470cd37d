package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/rampartsec/rampart/internal/datapath"
)

// TestLookupSkips walks one endpoint through the writes that change its
// lookup-skip bits and checks, after each, the bits the programs read and
// that a new flow matching only a wildcard or CIDR row still gets that
// row's verdict: a bit set while such a row exists would drop it.
func TestLookupSkips(t *testing.T) {
	d := mustDatapath(t)
	const ep = datapath.EndpointID(7)
	E, I := datapath.Egress, datapath.Ingress
	in := func(kind uint32) uint32 { return kind }
	eg := func(kind uint32) uint32 { return kind << datapath.SkipEgressShift }
	allPolicy := in(datapath.SkipAnyPeer|datapath.SkipAnyProto) | eg(datapath.SkipAnyPeer|datapath.SkipAnyProto)
	allCIDR := in(datapath.SkipCIDR) | eg(datapath.SkipCIDR)
	for _, e := range []datapath.IdentityEntry{
		{Prefix: netip.PrefixFrom(epAddr, 32), Identity: idEP},
		{Prefix: netip.PrefixFrom(podB, 32), Identity: idB},
	} {
		if err := d.SetIdentity(e.Prefix, e.Identity); err != nil {
			t.Fatal(err)
		}
	}
	peerRow := entry(ep, I, datapath.ProtoTCP, idB, datapath.Port(80), datapath.VerdictAllow, 1)
	anyPeerRow := entry(ep, I, datapath.ProtoTCP, datapath.IdentityAny, datapath.Port(81), datapath.VerdictAllow, 2)
	anyProtoRow := entry(ep, E, datapath.ProtoAny, idB, datapath.Port(82), datapath.VerdictAllow, 3)
	classRow := entry(ep, I, datapath.ProtoTCP, classPeer(t, classAny), datapath.Port(83), datapath.VerdictAllow, 4)
	cidrRow := datapath.CIDREntry{Endpoint: ep, Direction: I, Prefix: netip.MustParsePrefix("10.250.2.0/24"), Class: datapath.CIDRClass{Any: classAny}}
	setEP := func() error { return d.SetEndpoint(ep, *enforced) }

	steps := []struct {
		name string
		do   func() error
		// want is the expected bits; configured says whether the
		// endpoint has an entry to read them from.
		want       uint32
		configured bool
		// pkts go through the programs after the step.
		pkts []pkt
	}{
		{
			name: "rows synced before the endpoint exists",
			do:   func() error { return d.SyncPolicy(ep, []datapath.PolicyEntry{peerRow}) },
		},
		{
			name: "configuration takes the remembered bits",
			do:   setEP, want: allPolicy, configured: true,
			pkts: []pkt{
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40000, 80, tcpSYN)), verdict: fwd, rule: 1},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40000, 81, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "raw update of a wildcard-peer row clears its bit",
			do:   func() error { return d.UpdatePolicy([]datapath.PolicyEntry{anyPeerRow}) },
			want: allPolicy &^ in(datapath.SkipAnyPeer), configured: true,
			pkts: []pkt{{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40001, 81, tcpSYN)), verdict: fwd, rule: 2}},
		},
		{
			name: "sync with a wildcard-protocol row",
			do: func() error {
				return d.SyncPolicy(ep, []datapath.PolicyEntry{peerRow, anyProtoRow, classRow})
			},
			want: allPolicy &^ eg(datapath.SkipAnyProto), configured: true,
			pkts: []pkt{
				{hook: fromEP, frame: ip(epAddr, podB, 17, udp(40002, 82)), verdict: fwd, rule: 3},
				{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40003, 81, tcpSYN)), verdict: drop, reason: datapath.ReasonDefaultDeny},
			},
		},
		{
			name: "cidr sync sets the bit of the direction without rows",
			do:   func() error { return d.SyncCIDR(ep, []datapath.CIDREntry{cidrRow}) },
			want: allPolicy&^eg(datapath.SkipAnyProto) | eg(datapath.SkipCIDR), configured: true,
			pkts: []pkt{{hook: toEP, frame: ip(podB, epAddr, 6, tcp(40004, 83, tcpSYN)), verdict: fwd, rule: 4}},
		},
		{
			name: "reconfiguration keeps the bits",
			do:   func() error { return d.SetEndpoint(ep, *audit) },
			want: allPolicy&^eg(datapath.SkipAnyProto) | eg(datapath.SkipCIDR), configured: true,
		},
		{
			name: "emptied rows set every bit",
			do: func() error {
				if err := d.SyncPolicy(ep, nil); err != nil {
					return err
				}
				return d.SyncCIDR(ep, nil)
			},
			want: allPolicy | allCIDR, configured: true,
		},
		{
			name: "a deleted endpoint starts again from no bits",
			do: func() error {
				if err := d.DeleteEndpoint(ep); err != nil {
					return err
				}
				return setEP()
			},
			want: 0, configured: true,
		},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := d.EndpointSkips(ep)
		switch {
		case !st.configured:
			if err == nil {
				t.Errorf("%s: endpoint has an entry (bits %#x) before SetEndpoint", st.name, got)
			}
		case err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case got != st.want:
			t.Errorf("%s: skip bits %#x, want %#x", st.name, got, st.want)
		}
		if len(st.pkts) == 0 {
			continue
		}
		progs, err := d.LoadPrograms(ep)
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range st.pkts {
			prog := progs.FromEndpoint
			if p.hook == toEP {
				prog = progs.ToEndpoint
			}
			ret, err := prog.Run(&ebpf.RunOptions{Data: p.frame})
			if err != nil {
				t.Fatalf("%s: packet %d: %v", st.name, j, err)
			}
			if ret != p.ret() {
				t.Errorf("%s: packet %d returned %#x, want %#x (%v %v)", st.name, j, ret, p.ret(), p.verdict, p.reason)
			}
		}
		progs.Close()
	}
}
