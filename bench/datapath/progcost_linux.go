package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/rampartsec/rampart/internal/datapath"
)

// Endpoint ids of the program cost measurement, apart from those of the
// attached variants.
const (
	costClientEP datapath.EndpointID = 0xfff0
	costServerEP datapath.EndpointID = 0xfff1
)

// Return codes of the programs (enum tcx_action in bpf/types.h).
const (
	retNext     = ^uint32(0) // TCX_NEXT, -1: forwarded
	retDrop     = 2          // TCX_DROP
	retRedirect = 7          // TCX_REDIRECT: delivered locally (bpf_redirect_peer)
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpACK = 0x10
)

// tcpFrame builds an Ethernet/IPv4/TCP frame; the programs read headers
// only, so the TCP checksum is left zero.
func tcpFrame(src, dst netip.AddrPort, flags uint8) []byte {
	b := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[6] = 0x40 // DF
	ip[9] = datapath.ProtoTCP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	setTTL(b, 64)
	tcp := b[34:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	return b
}

// setTTL sets the TTL of an IPv4 frame and its header checksum.
func setTTL(frame []byte, ttl uint8) {
	ip := frame[14:34]
	ip[8] = ttl
	binary.BigEndian.PutUint16(ip[10:], 0)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
}

// benchmark runs pc's frame repeat times through prog and returns the
// last return code and the kernel-timed time per run. BPF_PROG_TEST_RUN
// runs one skb repeat times, so a delivered frame loses a TTL on every run
// until it would expire and take the host's path: delivered frames start
// at TTL 255 and run in batches that end before TTL 1.
func benchmark(prog *ebpf.Program, pc progCase, repeat int) (uint32, time.Duration, error) {
	if !pc.delivered {
		return prog.Benchmark(pc.frame, repeat, nil)
	}
	const batch = 250
	frame := slices.Clone(pc.frame)
	setTTL(frame, 255)
	var (
		ret   uint32
		total time.Duration
	)
	for done := 0; done < repeat; done += batch {
		n := min(batch, repeat-done)
		r, per, err := prog.Benchmark(frame, n, nil)
		if err != nil {
			return 0, 0, err
		}
		ret, total = r, total+per*time.Duration(n)
	}
	return ret, total / time.Duration(max(repeat, 1)), nil
}

// progCase is one packet path through the programs.
type progCase struct {
	name string
	// server selects the server's programs rather than the client's;
	// ingress selects to_endpoint rather than from_endpoint.
	server, ingress bool
	// delivered turns local delivery on: from_endpoint then also decides
	// for the receiver and redirects the packet. The other paths run with
	// it off, so that each measures one hook.
	delivered bool
	frame     []byte
	want      uint32
}

// progCases are the paths a packet can take, measured in the order given.
func progCases() []progCase {
	c := netip.AddrPortFrom(clientAddr, 40000)
	s := netip.AddrPortFrom(serverAddr, echoPort)
	return []progCase{
		{name: "established, sender (client egress)", frame: tcpFrame(c, s, tcpACK), want: retNext},
		{name: "established, receiver (server ingress)", server: true, ingress: true, frame: tcpFrame(c, s, tcpACK), want: retNext},
		{name: "reply (server egress)", server: true, frame: tcpFrame(s, c, tcpACK), want: retNext},
		{name: "reply (client ingress)", ingress: true, frame: tcpFrame(s, c, tcpACK), want: retNext},
		// A FIN is allowed by policy but opens no connection, so every run
		// takes the full new-flow lookup without creating an entry.
		{name: "new flow, allowed (server ingress)", server: true, ingress: true,
			frame: tcpFrame(netip.AddrPortFrom(clientAddr, 40001), s, tcpFIN|tcpACK), want: retNext},
		{name: "new flow, denied (server ingress)", server: true, ingress: true,
			frame: tcpFrame(netip.AddrPortFrom(clientAddr, 40002), netip.AddrPortFrom(serverAddr, deniedPort), tcpSYN), want: retDrop},
		{name: "established, delivered (client egress + server ingress)", delivered: true, frame: tcpFrame(c, s, tcpACK), want: retRedirect},
		{name: "reply, delivered (server egress + client ingress)", server: true, delivered: true, frame: tcpFrame(s, c, tcpACK), want: retRedirect},
	}
}

// ProgramCost runs each progCase repeat times through the programs with
// BPF_PROG_TEST_RUN, with policy size n, and returns the time per packet
// in case order. The kernel times only the program runs and stops the
// clock while the loop yields the CPU, so the result holds up on a busy
// machine where wall-clock rates do not. Flow events are off during the
// measurement, so it is the lookup and conntrack cost alone. The frames
// are addressed to the device BPF_PROG_TEST_RUN uses (all-zero MACs,
// loopback's), as frames from an endpoint are to its host veth, so the
// delivered paths take the whole local delivery; nothing is delivered.
func (r *rampart) ProgramCost(n, repeat int) (_ []time.Duration, err error) {
	pol, ok := r.policies[n]
	if !ok {
		return nil, fmt.Errorf("no policy generated for N=%d", n)
	}
	setDelivery := func(on bool) error {
		return r.d.SetConfig(datapath.Config{Events: datapath.EventsNone, DisableLocalRedirect: !on})
	}
	if err := setDelivery(false); err != nil {
		return nil, err
	}
	defer func() {
		err = errors.Join(err, r.d.SetConfig(r.cfg),
			r.d.DeleteEndpoint(costClientEP), r.d.DeleteEndpoint(costServerEP))
	}()
	progs := make(map[bool]*datapath.Programs)
	for i, ep := range []struct {
		server bool
		id     datapath.EndpointID
		ident  datapath.Identity
		addr   netip.Addr
		rows   []datapath.PolicyEntry
	}{
		{false, costClientEP, clientID, clientAddr, withEndpoint(pol[0], costClientEP)},
		{true, costServerEP, serverID, serverAddr, withEndpoint(pol[1], costServerEP)},
	} {
		// Interfaces and MACs that only the delivery rows hold.
		cfg := datapath.EndpointConfig{Identity: ep.ident, IngressEnforced: true, EgressEnforced: true,
			IfIndex: 1000 + i, Addrs: []netip.Addr{ep.addr},
			MAC: net.HardwareAddr{2, 0, 0, 0, byte(i), 1}, HostMAC: net.HardwareAddr{2, 0, 0, 0, byte(i), 2}}
		if err := r.d.SetEndpoint(ep.id, cfg); err != nil {
			return nil, err
		}
		if err := r.d.SyncPolicy(ep.id, ep.rows); err != nil {
			return nil, err
		}
		p, err := r.d.LoadPrograms(ep.id)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		progs[ep.server] = p
	}
	pick := func(server, ingress bool) *ebpf.Program {
		if ingress {
			return progs[server].ToEndpoint
		}
		return progs[server].FromEndpoint
	}

	// Open the connection the way it crosses both endpoints: SYN, SYN-ACK,
	// ACK, each through the sender's egress and the receiver's ingress.
	c := netip.AddrPortFrom(clientAddr, 40000)
	s := netip.AddrPortFrom(serverAddr, echoPort)
	for _, step := range []struct {
		fromServer bool
		frame      []byte
	}{
		{false, tcpFrame(c, s, tcpSYN)},
		{true, tcpFrame(s, c, tcpSYN|tcpACK)},
		{false, tcpFrame(c, s, tcpACK)},
	} {
		for _, prog := range []*ebpf.Program{pick(step.fromServer, false), pick(!step.fromServer, true)} {
			ret, err := prog.Run(&ebpf.RunOptions{Data: step.frame})
			if err != nil {
				return nil, fmt.Errorf("handshake: %w", err)
			}
			if ret != retNext {
				return nil, fmt.Errorf("handshake packet dropped (%#x)", ret)
			}
		}
	}

	var out []time.Duration
	for _, pc := range progCases() {
		if err := setDelivery(pc.delivered); err != nil {
			return nil, err
		}
		ret, per, err := benchmark(pick(pc.server, pc.ingress), pc, repeat)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pc.name, err)
		}
		if ret != pc.want {
			return nil, fmt.Errorf("%s: program returned %#x, want %#x", pc.name, ret, pc.want)
		}
		out = append(out, per)
	}
	return out, nil
}
