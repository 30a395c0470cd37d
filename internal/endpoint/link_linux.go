package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/netnsexec"
)

// podIfName is the endpoint's interface inside its namespace.
const podIfName = "eth0"

// routeProtocol marks the host routes the Manager adds (RTPROT_STATIC,
// shown as "proto static" by `ip route`).
const routeProtocol = unix.RTPROT_STATIC

func ipNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// sysctlPath returns the /proc/sys/net file for key ("ipv4/conf/x/y").
func sysctlPath(key string) string { return filepath.Join("/proc/sys/net", key) }

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	return strings.TrimSpace(string(b)), err
}

func writeSysctl(key, value string) error {
	if err := os.WriteFile(sysctlPath(key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl net.%s=%s: %w", strings.ReplaceAll(key, "/", "."), value, err)
	}
	return nil
}

// hasForceForwarding reports whether the kernel has IPv6 per-interface
// force_forwarding (Linux 6.17+).
func hasForceForwarding() bool {
	_, err := os.Stat(sysctlPath("ipv6/conf/default/force_forwarding"))
	return err == nil
}

// hostLinkSysctls returns the sysctls of an endpoint's host veth, in the
// order they are written. IPv4: forwarding for packets from the endpoint;
// proxy_arp (with no delay) so the veth answers ARP for the gateway even
// without the endpoint's static neighbour entry; strict reverse-path
// filtering so the endpoint cannot send with another endpoint's source
// address. IPv6: forwarding (router behaviour on the link), force_forwarding
// (the actual per-interface forwarding switch on 6.17+), and no router
// advertisements accepted from the endpoint.
func hostLinkSysctls(ifname string, v4, v6 bool) [][2]string {
	var s [][2]string
	if v4 {
		s = append(s,
			[2]string{"ipv4/conf/" + ifname + "/forwarding", "1"},
			[2]string{"ipv4/conf/" + ifname + "/rp_filter", "1"},
			[2]string{"ipv4/conf/" + ifname + "/proxy_arp", "1"},
			[2]string{"ipv4/neigh/" + ifname + "/proxy_delay", "0"},
		)
	}
	if v6 {
		s = append(s,
			[2]string{"ipv6/conf/" + ifname + "/accept_ra", "0"},
			[2]string{"ipv6/conf/" + ifname + "/forwarding", "1"},
		)
		if hasForceForwarding() {
			s = append(s, [2]string{"ipv6/conf/" + ifname + "/force_forwarding", "1"})
		}
	}
	return s
}

// createVeth creates the endpoint's veth pair with the peer already in the
// namespace at nsPath as eth0, so the peer never appears in the host
// namespace under a temporary name.
func createVeth(nsPath, ifname, alias string) (netlink.Link, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = ifname
	veth := &netlink.Veth{
		LinkAttrs:     attrs,
		PeerName:      podIfName,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%w: interface %s", ErrExists, ifname)
		}
		return nil, fmt.Errorf("add veth %s: %w", ifname, err)
	}
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", ifname, err)
	}
	// The kernel ignores IFLA_IFALIAS when creating a link. Until the
	// alias is set, the name alone marks the veth as the instance's.
	if err := netlink.LinkSetAlias(l, alias); err != nil {
		return l, fmt.Errorf("veth %s: set alias: %w", ifname, err)
	}
	l.Attrs().Alias = alias
	return l, nil
}

// setupHost configures the host side of ep's veth: sysctls, the IPv6
// gateway address fe80::1, link up, and a route to each endpoint address
// through the veth.
func setupHost(l netlink.Link, ep *Endpoint) error {
	name := l.Attrs().Name
	for _, s := range hostLinkSysctls(name, ep.IPv4.IsValid(), ep.IPv6.IsValid()) {
		if err := writeSysctl(s[0], s[1]); err != nil {
			return err
		}
	}
	if ep.IPv6.IsValid() {
		gw := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(GatewayIPv6, 64)), Flags: unix.IFA_F_NODAD, Scope: unix.RT_SCOPE_LINK}
		if err := netlink.AddrAdd(l, gw); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: add %v: %w", name, GatewayIPv6, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s: set up: %w", name, err)
	}
	return ensureHostRoutes(l.Attrs().Index, ep)
}

// hostRoutes are the host's routes to ep: each address through the veth.
func hostRoutes(ifindex int, ep *Endpoint) []*netlink.Route {
	var rs []*netlink.Route
	if ep.IPv4.IsValid() {
		rs = append(rs, &netlink.Route{LinkIndex: ifindex, Dst: ipNet(ep.IPv4), Scope: netlink.SCOPE_LINK, Protocol: routeProtocol})
	}
	if ep.IPv6.IsValid() {
		rs = append(rs, &netlink.Route{LinkIndex: ifindex, Dst: ipNet(ep.IPv6), Protocol: routeProtocol})
	}
	return rs
}

// ensureHostRoutes adds ep's host routes that are missing. A route to the
// same address through another interface is an error, not replaced: it
// means two endpoints (or instances) claim one address.
func ensureHostRoutes(ifindex int, ep *Endpoint) error {
	for _, r := range hostRoutes(ifindex, ep) {
		err := netlink.RouteAdd(r)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("route %v: %w", r.Dst, err)
		}
		got, gerr := netlink.RouteGet(r.Dst.IP)
		if gerr != nil || len(got) == 0 || got[0].LinkIndex != ifindex {
			return fmt.Errorf("%w: a route to %v through another interface exists", ErrExists, r.Dst)
		}
	}
	return nil
}

// setupPod configures the namespace side: lo and eth0 up, the endpoint's
// addresses on eth0, both gateways as permanent neighbours with the host
// veth's MAC (so no ARP or neighbour discovery is needed to leave), an
// on-link route to 169.254.1.1 and default routes via the gateways. It
// returns eth0's MAC.
func setupPod(nsPath string, hostMAC net.HardwareAddr, ep *Endpoint) (string, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return "", fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("netlink in %s: %w", nsPath, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return "", fmt.Errorf("%s: lo: %w", nsPath, err)
	}
	eth, err := h.LinkByName(podIfName)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", nsPath, podIfName, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return "", fmt.Errorf("%s: set lo up: %w", nsPath, err)
	}
	if ep.IPv6.IsValid() {
		// The namespace's own view of its interface: no router
		// advertisements (it has a static default route).
		if err := netnsexec.DoPath(nsPath, func() error {
			return writeSysctl("ipv6/conf/"+podIfName+"/accept_ra", "0")
		}); err != nil {
			return "", err
		}
	}
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if !a.IsValid() {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(a)}
		if a.Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(eth, addr); err != nil {
			return "", fmt.Errorf("%s: add %v: %w", nsPath, a, err)
		}
	}
	if err := h.LinkSetUp(eth); err != nil {
		return "", fmt.Errorf("%s: set %s up: %w", nsPath, podIfName, err)
	}
	idx := eth.Attrs().Index
	var routes []*netlink.Route
	if ep.IPv4.IsValid() {
		routes = append(routes,
			&netlink.Route{LinkIndex: idx, Dst: ipNet(GatewayIPv4), Scope: netlink.SCOPE_LINK},
			&netlink.Route{LinkIndex: idx, Gw: GatewayIPv4.AsSlice(), Src: ep.IPv4.AsSlice()},
		)
	}
	if ep.IPv6.IsValid() {
		routes = append(routes, &netlink.Route{LinkIndex: idx, Gw: GatewayIPv6.AsSlice()})
	}
	for _, gw := range []netip.Addr{GatewayIPv4, GatewayIPv6} {
		if (gw.Is4() && !ep.IPv4.IsValid()) || (gw.Is6() && !ep.IPv6.IsValid()) {
			continue
		}
		n := &netlink.Neigh{LinkIndex: idx, IP: gw.AsSlice(), HardwareAddr: hostMAC, State: netlink.NUD_PERMANENT}
		if gw.Is4() {
			n.Family = netlink.FAMILY_V4
		} else {
			n.Family = netlink.FAMILY_V6
		}
		if err := h.NeighSet(n); err != nil {
			return "", fmt.Errorf("%s: neighbour %v: %w", nsPath, gw, err)
		}
	}
	for _, r := range routes {
		if err := h.RouteAdd(r); err != nil {
			return "", fmt.Errorf("%s: route %v via %v: %w", nsPath, r.Dst, r.Gw, err)
		}
	}
	return eth.Attrs().HardwareAddr.String(), nil
}

// checkNetwork verifies that ep's kernel objects are the ones it was
// created with: the namespace is mounted, the host veth has its name,
// index and alias, and eth0 in the namespace is its peer and carries the
// endpoint's addresses. It returns the host veth and eth0's MAC; the
// error says what is wrong.
func checkNetwork(instance string, ep *Endpoint) (netlink.Link, string, error) {
	if !isNetNS(ep.NetNSPath) {
		return nil, "", fmt.Errorf("network namespace %s is gone", ep.NetNSPath)
	}
	l, err := netlink.LinkByName(ep.HostIfName)
	if err != nil {
		return nil, "", fmt.Errorf("host interface %s is gone", ep.HostIfName)
	}
	if l.Type() != "veth" || l.Attrs().Alias != linkAlias(instance, ep.Key()) {
		return nil, "", fmt.Errorf("host interface %s is not this endpoint's veth (type %s, alias %q)", ep.HostIfName, l.Type(), l.Attrs().Alias)
	}
	if l.Attrs().Index != ep.HostIfIndex {
		return nil, "", fmt.Errorf("host interface %s was re-created (index %d, was %d)", ep.HostIfName, l.Attrs().Index, ep.HostIfIndex)
	}
	ns, err := netns.GetFromPath(ep.NetNSPath)
	if err != nil {
		return nil, "", fmt.Errorf("open network namespace %s: %w", ep.NetNSPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, "", fmt.Errorf("netlink in %s: %w", ep.NetNSPath, err)
	}
	defer h.Close()
	eth, err := h.LinkByName(podIfName)
	if err != nil {
		return nil, "", fmt.Errorf("%s has no %s", ep.NetNSPath, podIfName)
	}
	if eth.Attrs().ParentIndex != ep.HostIfIndex {
		return nil, "", fmt.Errorf("%s in %s is not the peer of %s", podIfName, ep.NetNSPath, ep.HostIfName)
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_ALL)
	if err != nil {
		return nil, "", fmt.Errorf("addresses of %s in %s: %w", podIfName, ep.NetNSPath, err)
	}
	for _, want := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if !want.IsValid() {
			continue
		}
		found := false
		for _, a := range addrs {
			if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == want {
				found = true
			}
		}
		if !found {
			return nil, "", fmt.Errorf("%s in %s lost address %v", podIfName, ep.NetNSPath, want)
		}
	}
	return l, eth.Attrs().HardwareAddr.String(), nil
}

// ownedLinks returns the host interfaces of instance: veths whose alias
// or name marks them as the instance's.
func ownedLinks(instance string) ([]netlink.Link, error) {
	links, err := linkList()
	if err != nil {
		return nil, err
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Type() != "veth" {
			continue
		}
		_, named := parseHostIfName(instance, l.Attrs().Name)
		if named || strings.HasPrefix(l.Attrs().Alias, aliasPrefix(instance)) {
			out = append(out, l)
		}
	}
	return out, nil
}

// anyRampartLinks reports whether any instance has a veth in the host
// namespace.
func anyRampartLinks() (bool, error) {
	links, err := linkList()
	if err != nil {
		return false, err
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, "rampart:") {
			return true, nil
		}
	}
	return false, nil
}

// linkList retries a dump that a concurrent change interrupted.
func linkList() ([]netlink.Link, error) {
	var err error
	for range 5 {
		var links []netlink.Link
		links, err = netlink.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list interfaces: %w", err)
}

// deleteLink deletes the host interface named name if it exists and has
// index (when index is non-zero), which also deletes its peer.
func deleteLink(name string, index int) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if index != 0 && l.Attrs().Index != index {
		return nil // someone else's interface now
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

// defaultRouteLinks returns the names of the interfaces that carry the
// main table's default routes of both families.
func defaultRouteLinks() ([]string, error) {
	seen := map[int]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			if r.LinkIndex > 0 {
				seen[r.LinkIndex] = true
			}
			for _, nh := range r.MultiPath {
				seen[nh.LinkIndex] = true
			}
		}
	}
	var names []string
	for idx := range seen {
		l, err := netlink.LinkByIndex(idx)
		if err != nil {
			continue
		}
		names = append(names, l.Attrs().Name)
	}
	return names, nil
}

// netlinkLinkByName returns the interface called name, or nil if there
// is none.
func netlinkLinkByName(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	return l, nil
}

// netlinkDelete deletes l, ignoring errors: it undoes a half-made link.
func netlinkDelete(l netlink.Link) { netlink.LinkDel(l) }

// isPeerIn reports whether the namespace at nsPath has an eth0 whose veth
// peer is the host interface hostIndex.
func isPeerIn(nsPath string, hostIndex int) bool {
	if !isNetNS(nsPath) {
		return false
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return false
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false
	}
	defer h.Close()
	eth, err := h.LinkByName(podIfName)
	return err == nil && eth.Attrs().ParentIndex == hostIndex
}
