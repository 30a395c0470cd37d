package endpoint

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The masquerade rules live in an inet table of the instance's own,
// "rampart-<instance>", with one chain:
//
//	table inet rampart-<instance> {
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			meta nfproto ipv4 ip saddr <PodCIDR4> ip daddr != <PodCIDR4> counter masquerade
//			meta nfproto ipv6 ip6 saddr <PodCIDR6> ip6 daddr != <PodCIDR6> counter masquerade
//		}
//	}
//
// They are written through nf_tables netlink (github.com/google/nftables)
// rather than the nft command: no extra package on the node, no text to
// generate or parse, and the whole table is replaced in one transaction.
const natChain = "postrouting"

// ensureNAT makes the instance's table hold exactly the masquerade rules
// for the pod CIDRs. It adds the table and chain if missing and replaces
// the chain's rules, all in one netlink batch, so there is never a moment
// without masquerading. Connections already masqueraded keep their
// mapping in conntrack either way.
func ensureNAT(instance string, cidr4, cidr6 netip.Prefix) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Name: NFTableName(instance), Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{
		Name:     natChain,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	c.FlushChain(ch)
	for _, p := range []netip.Prefix{cidr4, cidr6} {
		if !p.IsValid() {
			continue
		}
		c.AddRule(&nftables.Rule{
			Table:    t,
			Chain:    ch,
			Exprs:    masqueradeExprs(p),
			UserData: userdata.AppendString(nil, userdata.TypeComment, "rampart "+instance+": masquerade "+p.String()+" to the world"),
		})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", NFTableName(instance), err)
	}
	return nil
}

// masqueradeExprs is "meta nfproto F <saddr> in p, <daddr> not in p,
// counter, masquerade".
func masqueradeExprs(p netip.Prefix) []expr.Any {
	proto, saddr, daddr := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16)
	if p.Addr().Is6() {
		proto, saddr, daddr = byte(unix.NFPROTO_IPV6), 8, 24
	}
	n := uint32(p.Addr().BitLen() / 8)
	mask := prefixNet(p).Mask
	match := func(offset uint32, op expr.CmpOp) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
			&expr.Cmp{Op: op, Register: 1, Data: p.Addr().AsSlice()},
		}
	}
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	e = append(e, match(saddr, expr.CmpOpEq)...)
	e = append(e, match(daddr, expr.CmpOpNeq)...)
	return append(e, &expr.Counter{}, &expr.Masq{})
}

// natTableExists reports whether the instance's table exists.
func natTableExists(instance string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == NFTableName(instance) {
			return true, nil
		}
	}
	return false, nil
}

// deleteNAT deletes the instance's table; a missing table is not an error.
func deleteNAT(instance string) error {
	ok, err := natTableExists(instance)
	if err != nil || !ok {
		return err
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(&nftables.Table{Name: NFTableName(instance), Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete nftables table inet %s: %w", NFTableName(instance), err)
	}
	return nil
}
