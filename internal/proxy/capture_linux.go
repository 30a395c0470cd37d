package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/netnsexec"
)

// NFTableName is the nftables table the proxy installs in every captured
// workload's namespace:
//
//	table inet rampart-proxy {
//		chain output {
//			type nat hook output priority dstnat; policy accept;
//			meta l4proto != tcp return
//			meta mark & 0xfff == 0x539 return
//			oifname "lo" return
//			counter redirect to :15001
//		}
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			meta l4proto != tcp return
//			iifname "lo" return
//			tcp dport 15008 return
//			counter redirect to :15006
//		}
//		chain transparent {
//			type route hook output priority mangle; policy accept;
//			meta mark & 0xfff == 0x53a ct mark set 0x53a
//			ct mark 0x53a meta mark set 0x53a
//		}
//	}
//
// with, beside it, the policy rules "fwmark 0x53a/0xfff lookup 1338" for
// IPv4 and IPv6 and that table's routes "local default dev lo"
// (TransparentMark).
//
// output catches what the workload connects to, except the proxy's own
// marked sockets and everything over loopback (the workload talking to
// itself, and the proxy reaching the application on the workload's own
// address); prerouting catches what arrives for the workload, except
// tunnels to 15008. REDIRECT goes to 127.0.0.1/::1 (output) or the
// receiving interface's address (prerouting), with conntrack keeping the
// original destination for SO_ORIGINAL_DST. Only TCP is captured.
// transparent returns the application's answers on the connections the
// proxy made from a client's address to the proxy.
const NFTableName = "rampart-proxy"

// openNetns opens the namespace at path; the handle pins it for as long as
// the proxy serves the workload, even if the path is unmounted.
func openNetns(path string) (netns.NsHandle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return ns, nil
}

// listen opens w's listeners. In a namespace of its own the workload gets
// the outbound, inbound plaintext and HBONE listeners on the wildcard
// addresses of both families (IPv6 only if the namespace has it, and
// IPv6-only sockets so SO_ORIGINAL_DST is asked per family). In the
// proxy's own namespace only HBONE listeners are opened, one on each of
// the workload's addresses, so several such workloads can share a port.
func listen(ns netns.NsHandle, w Workload, ports Ports) (ls []net.Listener, err error) {
	defer func() {
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			ls = nil
		}
	}()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	if ns == netns.None() {
		for _, ip := range w.IPs {
			l, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(ip, ports.HBONE).String())
			if err != nil {
				return ls, fmt.Errorf("listen: %w", err)
			}
			ls = append(ls, l)
		}
		return ls, nil
	}
	has6 := false
	for _, ip := range w.IPs {
		has6 = has6 || ip.Is6()
	}
	err = netnsexec.Do(ns, func() error {
		for _, port := range []uint16{ports.Outbound, ports.InboundPlaintext, ports.HBONE} {
			p := strconv.Itoa(int(port))
			l, err := lc.Listen(context.Background(), "tcp4", "0.0.0.0:"+p)
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			ls = append(ls, l)
			l, err = lc.Listen(context.Background(), "tcp6", "[::]:"+p)
			if err != nil {
				if !has6 {
					continue // a namespace without IPv6 needs no IPv6 listener
				}
				return fmt.Errorf("listen: %w", err)
			}
			ls = append(ls, l)
		}
		return nil
	})
	return ls, err
}

// installCapture makes the proxy's table in ns hold exactly the capture
// rules, in one netlink transaction: table and chains are added if
// missing and the chains' rules replaced, so there is never a moment with
// a partial rule set.
func installCapture(ns netns.NsHandle, ports Ports) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Name: NFTableName, Family: nftables.TableFamilyINet})
	out := c.AddChain(&nftables.Chain{
		Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest,
	})
	pre := c.AddChain(&nftables.Chain{
		Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest,
	})
	tp := c.AddChain(&nftables.Chain{
		Name: "transparent", Table: t, Type: nftables.ChainTypeRoute,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle,
	})
	c.FlushChain(out)
	c.FlushChain(pre)
	c.FlushChain(tp)
	add := func(ch *nftables.Chain, comment string, e ...expr.Any) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e, UserData: userdata.AppendString(nil, userdata.TypeComment, comment)})
	}
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	add(out, "only tcp is captured", append(notTCP(), ret)...)
	add(out, "the proxy's own sockets", &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(MarkMask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(SocketMark)}, ret)
	add(out, "loopback, including the workload's own addresses",
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")}, ret)
	add(out, "outbound capture", append(append(tcpOnly(), &expr.Counter{}), redirect(ports.Outbound)...)...)
	add(pre, "only tcp is captured", append(notTCP(), ret)...)
	add(pre, "loopback", &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")}, ret)
	add(pre, "hbone tunnels reach the proxy directly", append(tcpOnly(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(ports.HBONE)}, ret)...)
	add(pre, "inbound plaintext capture", append(append(tcpOnly(), &expr.Counter{}), redirect(ports.InboundPlaintext)...)...)
	mark := binaryutil.NativeEndian.PutUint32(TransparentMark)
	add(tp, "the proxy's connections from a client's address",
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(MarkMask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mark},
		&expr.Immediate{Register: 1, Data: mark},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true})
	add(tp, "the application's answers on them go back to the proxy",
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mark},
		&expr.Immediate{Register: 1, Data: mark},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", NFTableName, err)
	}
	return installTransparentRoutes(ns)
}

// transparentRoutes are the policy rules and routes that deliver packets
// marked TransparentMark locally, for both families.
func transparentRoutes(lo int) ([]*netlink.Rule, []*netlink.Route) {
	var rules []*netlink.Rule
	var routes []*netlink.Route
	mask := MarkMask
	for _, def := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
		r := netlink.NewRule()
		r.Family = unix.AF_INET
		if def.Addr().Is6() {
			r.Family = unix.AF_INET6
		}
		r.Mark, r.Mask = TransparentMark, &mask
		r.Table, r.Priority = TransparentTable, transparentRulePriority
		rules = append(rules, r)
		routes = append(routes, &netlink.Route{
			LinkIndex: lo, Dst: &net.IPNet{IP: def.Addr().AsSlice(), Mask: net.CIDRMask(0, def.Addr().BitLen())},
			Table: TransparentTable, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST,
		})
	}
	return rules, routes
}

// installTransparentRoutes puts transparentRoutes into ns, replacing what
// an earlier install left. A namespace without IPv6 gets the IPv4 half.
func installTransparentRoutes(ns netns.NsHandle) error {
	return withTransparentRoutes(ns, func(h *netlink.Handle, rule *netlink.Rule, route *netlink.Route) error {
		if err := h.RouteReplace(route); err != nil {
			if rule.Family == unix.AF_INET6 && errors.Is(err, unix.EAFNOSUPPORT) {
				return nil
			}
			return fmt.Errorf("route %v table %d: %w", route.Dst, TransparentTable, err)
		}
		if err := h.RuleDel(rule); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("replace rule fwmark %#x: %w", TransparentMark, err)
		}
		if err := h.RuleAdd(rule); err != nil {
			return fmt.Errorf("rule fwmark %#x lookup %d: %w", TransparentMark, TransparentTable, err)
		}
		return nil
	})
}

// removeTransparentRoutes deletes what installTransparentRoutes added;
// what is missing already is not an error.
func removeTransparentRoutes(ns netns.NsHandle) error {
	return withTransparentRoutes(ns, func(h *netlink.Handle, rule *netlink.Rule, route *netlink.Route) error {
		if err := h.RuleDel(rule); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("delete rule fwmark %#x: %w", TransparentMark, err)
		}
		if err := h.RouteDel(route); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("delete route table %d: %w", TransparentTable, err)
		}
		return nil
	})
}

// withTransparentRoutes calls f with a netlink handle in ns for each
// family's rule and route. A namespace without loopback is being torn
// down: there is nothing to do in it.
func withTransparentRoutes(ns netns.NsHandle, f func(*netlink.Handle, *netlink.Rule, *netlink.Route) error) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil
	}
	rules, routes := transparentRoutes(lo.Attrs().Index)
	for i := range rules {
		if err := f(h, rules[i], routes[i]); err != nil {
			return err
		}
	}
	return nil
}

// notTCP is "meta l4proto != tcp".
func notTCP() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

// tcpOnly is "meta l4proto tcp".
func tcpOnly() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
	}
}

// redirect is "redirect to :port".
func redirect(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// ifname pads an interface name to IFNAMSIZ, as the kernel compares it.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// removeCapture deletes the proxy's table from ns; a missing table or a
// namespace that is already gone is not an error.
func removeCapture(ns netns.NsHandle) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(&nftables.Table{Name: NFTableName, Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table inet %s: %w", NFTableName, err)
	}
	return removeTransparentRoutes(ns)
}
