package agent

import (
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/policy"
)

// hostIdentities maps the host's own addresses to the host identity, so
// that traffic the host sends to endpoints carries it. Endpoint addresses
// are skipped: they belong to the endpoints.
func hostIdentities(local map[endpoint.Key]*policy.Endpoint) []datapath.IdentityEntry {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil
	}
	mine := map[netip.Addr]bool{}
	for _, pe := range local {
		for _, a := range pe.IPs {
			mine[a] = true
		}
	}
	var out []datapath.IdentityEntry
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if mine[ip] || ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, datapath.IdentityEntry{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Identity: datapath.IdentityHost})
	}
	return out
}
