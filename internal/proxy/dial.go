package proxy

import (
	"context"
	"net"
	"net/netip"
)

// dial connects from inside ws's namespace with the proxy's mark; see
// dialIn.
func (p *Proxy) dial(ctx context.Context, ws *workloadState, dst netip.AddrPort) (*net.TCPConn, error) {
	return dialIn(ctx, ws.ns, dst)
}
