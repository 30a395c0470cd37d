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

// The router's gateway address on each endpoint's /24.
var (
	clientGW = netip.MustParseAddr("10.250.1.1")
	serverGW = netip.MustParseAddr("10.250.2.1")
)

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
	// clientVeth and serverVeth are the ifindexes of the router-side veths,
	// valid inside the router namespace.
	clientVeth, serverVeth int
}

// newTopology creates the three namespaces and wires them. On error
// everything created so far is released.
func newTopology() (t *topology, err error) {
	t = &topology{router: -1, client: -1, server: -1}
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
	if t.clientVeth, err = wire(rh, t.client, clientVethName, clientGW, clientAddr); err != nil {
		return nil, err
	}
	if t.serverVeth, err = wire(rh, t.server, serverVethName, serverGW, serverAddr); err != nil {
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
// endpoint namespace ns (eth0, addr/24, default route via gw) and returns
// the router-side ifindex.
func wire(rh *netlink.Handle, ns netns.NsHandle, hostName string, gw, addr netip.Addr) (int, error) {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := rh.LinkAdd(veth); err != nil {
		return 0, fmt.Errorf("add veth %s: %w", hostName, err)
	}
	hl, err := rh.LinkByName(hostName)
	if err != nil {
		return 0, fmt.Errorf("router veth %s: %w", hostName, err)
	}
	if err := rh.AddrAdd(hl, ifAddr(gw, 24)); err != nil {
		return 0, fmt.Errorf("router veth %s: add %v: %w", hostName, gw, err)
	}
	if err := rh.LinkSetUp(hl); err != nil {
		return 0, fmt.Errorf("router veth %s up: %w", hostName, err)
	}

	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return 0, fmt.Errorf("netlink in endpoint netns: %w", err)
	}
	defer nh.Close()
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		return 0, fmt.Errorf("endpoint eth0: %w", err)
	}
	if err := nh.AddrAdd(eth, ifAddr(addr, 24)); err != nil {
		return 0, fmt.Errorf("endpoint eth0: add %v: %w", addr, err)
	}
	for _, name := range []string{"lo", "eth0"} {
		if err := setUp(nh, name); err != nil {
			return 0, err
		}
	}
	r := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(gw.AsSlice())}
	if err := nh.RouteAdd(r); err != nil {
		return 0, fmt.Errorf("endpoint default route via %v: %w", gw, err)
	}
	return hl.Attrs().Index, nil
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
