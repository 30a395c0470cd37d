package agent_test

import (
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var pingID atomic.Uint32

func init() { pingID.Store(uint32(os.Getpid())) }

// ping sends one ICMP or ICMPv6 echo request to addr and waits briefly for
// the matching reply.
func ping(addr string) bool {
	a := netip.MustParseAddr(addr)
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if a.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		typ, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := icmp.ListenPacket(network, laddr)
	if err != nil {
		return false
	}
	defer c.Close()
	// A fresh echo identifier per probe: the datapath tracks echo
	// "connections" by identifier, and a reused one would ride on an
	// earlier, allowed exchange.
	id := int(pingID.Add(1)) & 0xffff
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("rampart")}}
	data, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	for try := 0; try < 2; try++ {
		if _, err := c.WriteTo(data, &net.IPAddr{IP: a.AsSlice()}); err != nil {
			return false
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 1500)
		for {
			n, peer, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && peer.String() == a.String() {
				return true
			}
		}
	}
	return false
}
