package datapath_test

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built frames for BPF_PROG_TEST_RUN. Checksums are computed even
// though the datapath ignores them, so a frame dumped from a failing test
// decodes cleanly in Wireshark.

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
)

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func eth(etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], []byte{0x02, 0, 0, 0, 0, 0x01})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 0x02})
	binary.BigEndian.PutUint16(b[12:], etherType)
	return append(b, payload...)
}

func csum(parts ...[]byte) uint16 {
	var sum uint32
	for _, b := range parts {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ext6 is an IPv6 extension header: its type and its bytes, whose first
// byte (next header) ip fills in.
type ext6 struct {
	typ  uint8
	data []byte
}

// hopByHop is an 8-byte hop-by-hop options header holding PadN.
func hopByHop() ext6 { return ext6{0, []byte{0, 0, 1, 4, 0, 0, 0, 0}} }

// destOpts is a 16-byte destination options header holding PadN.
func destOpts() ext6 {
	return ext6{60, []byte{0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}
}

// ip builds an IPv4 or IPv6 frame from src to dst carrying an L4 payload,
// with IPv6 extension headers in order.
func ip(src, dst netip.Addr, proto uint8, l4 []byte, ext ...ext6) []byte {
	if src.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		h[8] = 64
		h[9] = proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], csum(h))
		return eth(etherIPv4, append(h, l4...))
	}
	h := make([]byte, 40)
	h[0] = 0x60
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	var body []byte
	nextAt := 6 // offset of the pending next-header byte in h+body
	setNext := func(v uint8) {
		if nextAt < 40 {
			h[nextAt] = v
		} else {
			body[nextAt-40] = v
		}
	}
	for _, e := range ext {
		setNext(e.typ)
		nextAt = 40 + len(body)
		body = append(body, e.data...)
	}
	setNext(proto)
	body = append(body, l4...)
	binary.BigEndian.PutUint16(h[4:], uint16(len(body)))
	return eth(etherIPv6, append(h, body...))
}

func tcp(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000)
	if flags&tcpACK != 0 {
		binary.BigEndian.PutUint32(b[8:], 2000)
	}
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	return b
}

func udp(sport, dport uint16, payload ...byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func sctp(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef)
	return b
}

// icmpHdr builds an ICMP or ICMPv6 header with identifier/sequence (echo) or
// unused fields, followed by rest (an error's quoted packet).
func icmpHdr(typ, code uint8, id uint16, rest ...byte) []byte {
	b := make([]byte, 8, 8+len(rest))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], 1)
	b = append(b, rest...)
	binary.BigEndian.PutUint16(b[2:], csum(b))
	return b
}

// quoted strips the Ethernet header from a frame, leaving what an ICMP
// error quotes.
func quoted(frame []byte) []byte { return frame[14:] }

func arp() []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], etherIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1)
	return eth(etherARP, b)
}

// ip4Frag builds an IPv4 fragment: offset is in 8-byte units, more sets
// the MF flag, payload is this fragment's share of the datagram.
func ip4Frag(src, dst netip.Addr, proto uint8, id, offset uint16, more bool, payload []byte) []byte {
	f := ip(src, dst, proto, payload)
	h := f[14:34]
	binary.BigEndian.PutUint16(h[4:], id)
	flags := offset & 0x1fff
	if more {
		flags |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], flags)
	binary.BigEndian.PutUint16(h[10:], 0)
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return f
}

// ip4Opts builds an IPv4 frame whose header carries four bytes of options
// (NOPs), which only the copying parser handles.
func ip4Opts(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	f := ip(src, dst, proto, l4)
	h := append(append([]byte{}, f[14:34]...), 1, 1, 1, 1)
	h[0] = 0x46
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(l4)))
	binary.BigEndian.PutUint16(h[10:], 0)
	binary.BigEndian.PutUint16(h[10:], csum(h))
	return eth(etherIPv4, append(h, l4...))
}

// frag6 is an IPv6 fragment header.
func frag6(id uint32, offset uint16, more bool) ext6 {
	b := make([]byte, 8)
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], id)
	return ext6{44, b}
}
