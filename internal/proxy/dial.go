package proxy

import (
	"context"
	"net"
	"net/netip"

	"github.com/vishvananda/netns"

	"github.com/rampartsec/rampart/internal/sockio"
)

// dial connects from inside ws's namespace with the proxy's mark; see
// dialIn. In the proxy's own namespace, connections to other workloads
// leave from ws's own address of the destination's family, so the peer
// sees (and telemetry names) the right source. The connection reads and
// writes with raw system calls (raw).
func (p *Proxy) dial(ctx context.Context, ws *workloadState, dst netip.AddrPort) (*sockio.Conn, error) {
	var src netip.Addr
	if ws.own() && !ws.w.owns(dst.Addr()) {
		for _, ip := range ws.w.IPs {
			if ip.Is4() == dst.Addr().Is4() {
				src = ip
				break
			}
		}
	}
	return dialRaw(ctx, ws.ns, netip.AddrPortFrom(src, 0), false, dst)
}

// dialFrom connects to dst, the workload's application, from client's
// address (dialIn, transparent), so that the application sees the
// client as its peer, as it would without the mesh. In the proxy's own
// namespace (loopback mode) and for a client of the other family it is
// dial.
func (p *Proxy) dialFrom(ctx context.Context, ws *workloadState, client, dst netip.AddrPort) (*sockio.Conn, error) {
	src := client.Addr().Unmap()
	if ws.own() || !src.IsValid() || src.IsUnspecified() || src.Is4() != dst.Addr().Is4() {
		return p.dial(ctx, ws, dst)
	}
	return dialRaw(ctx, ws.ns, netip.AddrPortFrom(src, client.Port()), true, dst)
}

// dialRaw is dialIn returning a *sockio.Conn.
func dialRaw(ctx context.Context, ns netns.NsHandle, src netip.AddrPort, transparent bool, dst netip.AddrPort) (*sockio.Conn, error) {
	c, err := dialIn(ctx, ns, src, transparent, dst)
	if err != nil {
		return nil, err
	}
	sc, err := sockio.New(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

// raw returns a TCP connection the proxy accepted (on every listener, in
// serve, and in Forward) as a *sockio.Conn, whose reads and writes do not
// go through the scheduler's syscall state: on the proxy's data path that
// saves 20-35% of its CPU per request (package sockio). Anything else is
// returned as it is.
func raw(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	sc, err := sockio.New(tc)
	if err != nil {
		return c
	}
	return sc
}
