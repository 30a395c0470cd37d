package proxy

import (
	"context"
	"net"
	"net/netip"
)

// dial connects from inside ws's namespace with the proxy's mark; see
// dialIn. In the proxy's own namespace, connections to other workloads
// leave from ws's own address of the destination's family, so the peer
// sees (and telemetry names) the right source.
func (p *Proxy) dial(ctx context.Context, ws *workloadState, dst netip.AddrPort) (*net.TCPConn, error) {
	var src netip.Addr
	if ws.own() && !ws.w.owns(dst.Addr()) {
		for _, ip := range ws.w.IPs {
			if ip.Is4() == dst.Addr().Is4() {
				src = ip
				break
			}
		}
	}
	return dialIn(ctx, ws.ns, src, dst)
}
