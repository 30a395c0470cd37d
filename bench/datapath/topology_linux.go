package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// gateway returns the router's address on the /24 of endpoint address a:
// its .1.
func gateway(a netip.Addr) netip.Addr {
	b := a.As4()
	b[3] = 1
	return netip.AddrFrom4(b)
}

// Names of the router-side veths; they live in the router namespace, so
// they cannot collide with anything on the host.
const (
	clientVethName = "to-client"
	serverVethName = "to-server"
)

// topology is two endpoint namespaces, client and server, each with an
// eth0 paired with a veth in a router namespace that forwards between
// them. The router namespace stands in for a node's root namespace: it is
// where Rampart attaches to the host-side veths and where iptables rules
// go. Keeping it a namespace of our own means the benchmark never touches
// the host's forwarding settings, routes or firewall, which other users of
// the machine depend on.
type topology struct {
	router, client, server netns.NsHandle
	// clientAddr and serverAddr are the endpoints' addresses.
	clientAddr, serverAddr netip.Addr
	// clientVeth and serverVeth are the router-side veths, whose
	// ifindexes are valid inside the router namespace.
	clientVeth, serverVeth wired
}

// wired is one endpoint's veth pair: the router side's ifindex and MAC,
// and the MAC of the endpoint's eth0.
type wired struct {
	ifindex         int
	hostMAC, podMAC net.HardwareAddr
}

// newTopology creates the three namespaces and wires them, with the
// endpoint addresses of topology k (endpointAddrs). On error everything
// created so far is released.
func newTopology(k int) (t *topology, err error) {
	t = &topology{router: -1, client: -1, server: -1}
	t.clientAddr, t.serverAddr = endpointAddrs(k)
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	for _, ns := range []*netns.NsHandle{&t.router, &t.client, &t.server} {
		if *ns, err = newNetns(); err != nil {
			return nil, err
		}
	}
	rh, err := netlink.NewHandleAt(t.router)
	if err != nil {
		return nil, fmt.Errorf("netlink in router netns: %w", err)
	}
	defer rh.Close()
	if err := setUp(rh, "lo"); err != nil {
		return nil, err
	}
	if t.clientVeth, err = wire(rh, t.client, clientVethName, gateway(t.clientAddr), t.clientAddr); err != nil {
		return nil, err
	}
	if t.serverVeth, err = wire(rh, t.server, serverVethName, gateway(t.serverAddr), t.serverAddr); err != nil {
		return nil, err
	}
	if err := sysctl(t.router, "net/ipv4/ip_forward", "1"); err != nil {
		return nil, err
	}
	// The connection-rate client opens tens of thousands of connections a
	// run: widen its port range and let it reuse TIME_WAIT ports, as load
	// generators do.
	if err := sysctl(t.client, "net/ipv4/ip_local_port_range", "1024 65000"); err != nil {
		return nil, err
	}
	if err := sysctl(t.client, "net/ipv4/tcp_tw_reuse", "1"); err != nil {
		return nil, err
	}
	return t, nil
}

// wire creates the veth pair between the router (hostName, gw/24) and
// endpoint namespace ns (eth0, addr/24, default route via gw).
func wire(rh *netlink.Handle, ns netns.NsHandle, hostName string, gw, addr netip.Addr) (wired, error) {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := rh.LinkAdd(veth); err != nil {
		return wired{}, fmt.Errorf("add veth %s: %w", hostName, err)
	}
	hl, err := rh.LinkByName(hostName)
	if err != nil {
		return wired{}, fmt.Errorf("router veth %s: %w", hostName, err)
	}
	if err := rh.AddrAdd(hl, ifAddr(gw, 24)); err != nil {
		return wired{}, fmt.Errorf("router veth %s: add %v: %w", hostName, gw, err)
	}
	if err := rh.LinkSetUp(hl); err != nil {
		return wired{}, fmt.Errorf("router veth %s up: %w", hostName, err)
	}

	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return wired{}, fmt.Errorf("netlink in endpoint netns: %w", err)
	}
	defer nh.Close()
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		return wired{}, fmt.Errorf("endpoint eth0: %w", err)
	}
	if err := nh.AddrAdd(eth, ifAddr(addr, 24)); err != nil {
		return wired{}, fmt.Errorf("endpoint eth0: add %v: %w", addr, err)
	}
	for _, name := range []string{"lo", "eth0"} {
		if err := setUp(nh, name); err != nil {
			return wired{}, err
		}
	}
	r := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw.AsSlice())}
	if err := nh.RouteAdd(r); err != nil {
		return wired{}, fmt.Errorf("endpoint default route via %v: %w", gw, err)
	}
	return wired{ifindex: hl.Attrs().Index, hostMAC: hl.Attrs().HardwareAddr, podMAC: eth.Attrs().HardwareAddr}, nil
}

// routerTx returns how many packets the router's veths sent to the
// endpoints, that is the packets the router namespace routed to them.
func (t *topology) routerTx() (uint64, error) {
	rh, err := netlink.NewHandleAt(t.router)
	if err != nil {
		return 0, fmt.Errorf("netlink in router netns: %w", err)
	}
	defer rh.Close()
	var n uint64
	for _, name := range []string{clientVethName, serverVethName} {
		l, err := rh.LinkByName(name)
		if err != nil {
			return 0, fmt.Errorf("router veth %s: %w", name, err)
		}
		n += l.Attrs().Statistics.TxPackets
	}
	return n, nil
}

func setUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("link %s up: %w", name, err)
	}
	return nil
}

func ifAddr(a netip.Addr, bits int) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())},
		Flags: unix.IFA_F_NODAD,
	}
}

// Close releases the namespace handles. The namespaces, and the veths and
// firewall rules inside them, disappear once no process runs in them, so
// callers stop their servers first.
func (t *topology) Close() error {
	var errs []error
	for _, ns := range []netns.NsHandle{t.router, t.client, t.server} {
		if ns.IsOpen() {
			errs = append(errs, ns.Close())
		}
	}
	return errors.Join(errs...)
}
