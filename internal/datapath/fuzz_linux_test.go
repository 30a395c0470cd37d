package datapath_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// FuzzPrograms feeds arbitrary frames to both programs of an enforced
// endpoint without policy. The parser runs on bytes a workload controls, so
// beyond "the verdict is pass or drop" the invariant is the security one:
// under default deny only ARP and IPv6 neighbour discovery may pass.
func FuzzPrograms(f *testing.F) {
	seeds := [][]byte{
		ip(epAddr, podB, 6, tcp(40000, 80, tcpSYN)),                                        // valid TCP SYN
		ip(epAddr6, podB6, 17, udp(1, 53), hopByHop(), destOpts()),                         // IPv6 with extension headers
		ip(epAddr6, podB6, 17, udp(1, 53), frag6(1, 0, true)),                              // first IPv6 fragment
		ip4Frag(epAddr, podB, 17, 9, 3, false, make([]byte, 8)),                            // later IPv4 fragment
		ip(podB, epAddr, 1, icmpHdr(3, 3, 0, quoted(ip(epAddr, podB, 17, udp(1, 53)))...)), // ICMP error with a quote
		ip(podB, epAddr, 1, icmpHdr(3, 3, 0, 0x45)),                                        // ICMP error with a truncated quote
		ip(epAddr6, podB6, 58, icmpHdr(135, 0, 0)),                                         // neighbour solicitation
		ip(epAddr, podB, 6, nil),                                                           // IPv4 without its TCP header
		arp(),                                                                              // ARP
		eth(etherIPv4, []byte{0x4f, 0, 0, 0}),                                              // IHL beyond the packet
		eth(0x8100, make([]byte, 40)),                                                      // VLAN tag: unsupported
	}
	for _, s := range seeds {
		f.Add(s)
	}
	requirePrivileged(f)
	d := openDatapath(f, testPinDir(f))
	f.Cleanup(func() { removeDatapath(f, d) })
	if err := d.SetEndpoint(1, *enforced); err != nil {
		f.Fatal(err)
	}
	if err := d.SetIdentity(netip.PrefixFrom(podB, 32), idB); err != nil {
		f.Fatal(err)
	}
	progs, err := d.LoadPrograms(1)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { progs.Close() })

	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 4096 {
			return // test runs need an Ethernet header
		}
		for _, prog := range []*ebpf.Program{progs.FromEndpoint, progs.ToEndpoint} {
			ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
			if err != nil {
				return // the kernel refuses some frames before the program runs
			}
			switch ret {
			case retDrop:
			case retPass:
				if et := binary.BigEndian.Uint16(frame[12:]); et != etherARP && et != etherIPv6 {
					t.Fatalf("ethertype %#04x passed default deny: %x", et, frame)
				}
			default:
				t.Fatalf("return code %#x for frame %x", ret, frame)
			}
		}
	})
}
