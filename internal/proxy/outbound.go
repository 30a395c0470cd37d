package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartsec/rampart/internal/hbone"
)

// halfConn is a connection whose write direction can be closed alone:
// *net.TCPConn and *tunnelConn.
type halfConn interface {
	net.Conn
	CloseWrite() error
}

// handleOutbound serves a connection the workload made to some address
// and the capture rules redirected to the outbound listener.
func (p *Proxy) handleOutbound(ws *workloadState, c net.Conn) {
	start := time.Now()
	rec := Record{
		Kind:           RecordConnection,
		Reporter:       ReporterSource,
		SourceWorkload: ws.w.Key(),
		Start:          start,
	}
	rec.Source, _ = netip.ParseAddrPort(c.RemoteAddr().String())
	dst, err := originalDst(c)
	if err != nil {
		p.log.Warn("outbound connection without original destination; closed", slog.String("workload", ws.w.Key()), slog.Any("error", err))
		rec.Error = err.Error()
		p.finish(rec, start)
		return
	}
	p.forward(ws, c, dst, rec)
}

// Forward serves c, a connection the workload namespace/name opened to
// dst, exactly as the outbound listener serves a captured one: through a
// tunnel when dst belongs to a mesh workload, directly otherwise, copying
// bytes until both directions ended; then it emits the connection's
// record. It is how workloads in the proxy's own namespace (NetnsPath "")
// hand over connections they accepted, and what benchmarks measure the
// outbound path with.
func (p *Proxy) Forward(namespace, name string, c net.Conn, dst netip.AddrPort) error {
	ws := p.workload(namespace + "/" + name)
	if ws == nil {
		return fmt.Errorf("forward from %s/%s: %w", namespace, name, ErrUnknownWorkload)
	}
	if _, ok := c.(halfConn); !ok {
		return fmt.Errorf("forward from %s: %T cannot half-close", ws.w.Key(), c)
	}
	if !ws.track(c) {
		return fmt.Errorf("forward from %s: %w", ws.w.Key(), ErrUnknownWorkload)
	}
	defer ws.untrack(c)
	rec := Record{Kind: RecordConnection, Reporter: ReporterSource, SourceWorkload: ws.w.Key(), Start: time.Now()}
	rec.Source, _ = netip.ParseAddrPort(c.RemoteAddr().String())
	p.forward(ws, raw(c), dst, rec)
	return nil
}

// forward connects c's workload to dst and copies bytes both ways.
func (p *Proxy) forward(ws *workloadState, c net.Conn, dst netip.AddrPort, rec Record) {
	start := rec.Start
	rec.Destination = dst
	ctx, cancel := context.WithTimeout(ws.ctx, p.cfg.ConnectTimeout+p.cfg.HandshakeTimeout)
	up, err := p.open(ctx, ws, dst, &rec)
	cancel()
	if err != nil {
		p.log.Info("outbound connection refused", slog.String("workload", ws.w.Key()), slog.String("destination", dst.String()), slog.Any("error", err))
		rec.Error = err.Error()
		p.finish(rec, start)
		return
	}
	if !ws.track(up) {
		return
	}
	defer ws.untrack(up)
	p.countOpened(ReporterSource, rec.SourceWorkload, rec.DestinationWorkload)
	rec.forwarded = true
	rec.BytesReceived, rec.BytesSent, err = splice(c.(halfConn), up)
	if err != nil {
		rec.Error = err.Error()
	}
	p.finish(rec, start)
}

// finish completes a connection record and emits it.
func (p *Proxy) finish(rec Record, start time.Time) {
	rec.Duration = time.Since(start)
	p.emit(rec)
}

// open connects the workload ws to dst the way the mesh wants: through a
// tunnel to a mesh workload, directly to anything else. It fills the
// destination, transport and decision fields of rec.
func (p *Proxy) open(ctx context.Context, ws *workloadState, dst netip.AddrPort, rec *Record) (halfConn, error) {
	if p.loops(ws, dst) {
		return nil, fmt.Errorf("destination %s is the proxy itself", dst)
	}
	dw, mesh, err := p.resolveChecked(dst.Addr())
	if err != nil {
		return nil, err
	}
	if dw.Name != "" {
		rec.DestinationWorkload = dw.Key()
	}
	if !mesh {
		rec.Transport = TransportPassthrough
		c, err := p.dial(ctx, ws, dst)
		if err != nil {
			return nil, err
		}
		rec.Allowed = true
		return c, nil
	}
	rec.Transport = TransportHBONE
	rec.SourcePrincipal = ws.w.Principal(p.cfg.TrustDomain)
	t, err := p.openTunnel(ctx, ws, dw, dst)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			rec.Status = se.Status
		}
		var he *handshakeError
		if errors.As(err, &he) {
			rec.Reason = reasonHandshake
		}
		return nil, err
	}
	rec.Allowed = true
	rec.Status = 200
	rec.DestinationPrincipal = t.peer
	return t, nil
}

// loops reports whether dst is one of the proxy's own listeners as seen
// from ws, which a connection must never be forwarded to: it would come
// straight back.
func (p *Proxy) loops(ws *workloadState, dst netip.AddrPort) bool {
	if !p.cfg.Ports.has(dst.Port()) {
		return false
	}
	return dst.Addr().IsLoopback() || dst.Addr().IsUnspecified() || ws.w.owns(dst.Addr())
}

// resolveChecked calls the Resolver; a panic refuses the connection
// rather than guess, because guessing "outside the mesh" would send a
// mesh workload's traffic in the clear.
func (p *Proxy) resolveChecked(ip netip.Addr) (w Workload, mesh bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("resolver panicked", slog.Any("panic", r))
			w, mesh, err = Workload{}, false, fmt.Errorf("resolve %s: resolver panicked", ip)
		}
	}()
	w, mesh = p.cfg.Resolver.Resolve(ip.Unmap())
	return w, mesh, nil
}

// Dial connects the workload namespace/name to dst as if the workload had
// opened the connection and it had been captured: through an HBONE tunnel
// when dst belongs to a mesh workload, directly otherwise. It is how
// workloads in the proxy's own namespace (NetnsPath "") reach the mesh,
// and what benchmarks use. The connection's record is emitted when it is
// closed. Deadlines are not supported on tunnels.
func (p *Proxy) Dial(ctx context.Context, namespace, name string, dst netip.AddrPort) (net.Conn, error) {
	ws := p.workload(namespace + "/" + name)
	if ws == nil {
		return nil, fmt.Errorf("dial from %s/%s: %w", namespace, name, ErrUnknownWorkload)
	}
	start := time.Now()
	rec := Record{
		Kind:           RecordConnection,
		Reporter:       ReporterSource,
		SourceWorkload: ws.w.Key(),
		Destination:    dst,
		Start:          start,
	}
	c, err := p.open(ctx, ws, dst, &rec)
	if err != nil {
		rec.Error = err.Error()
		p.finish(rec, start)
		return nil, fmt.Errorf("dial %s from %s: %w", dst, ws.w.Key(), err)
	}
	rec.Source, _ = netip.ParseAddrPort(c.LocalAddr().String())
	dc := &dialedConn{halfConn: c, p: p, ws: ws, rec: rec}
	if !ws.track(dc) {
		return nil, fmt.Errorf("dial from %s: %w", ws.w.Key(), ErrUnknownWorkload)
	}
	p.countOpened(ReporterSource, rec.SourceWorkload, rec.DestinationWorkload)
	return dc, nil
}

// dialedConn counts the bytes of a connection returned by Dial and emits
// its record on Close.
type dialedConn struct {
	halfConn
	p    *Proxy
	ws   *workloadState
	rec  Record
	in   atomic.Int64 // read by the caller: the response direction
	out  atomic.Int64 // written by the caller: the request direction
	once sync.Once
}

func (d *dialedConn) Read(b []byte) (int, error) {
	n, err := d.halfConn.Read(b)
	d.in.Add(int64(n))
	return n, err
}

func (d *dialedConn) Write(b []byte) (int, error) {
	n, err := d.halfConn.Write(b)
	d.out.Add(int64(n))
	return n, err
}

func (d *dialedConn) Close() error {
	err := d.halfConn.Close()
	d.once.Do(func() {
		d.ws.untrack(d)
		d.rec.BytesSent, d.rec.BytesReceived = d.in.Load(), d.out.Load()
		d.rec.forwarded = true
		d.p.finish(d.rec, d.rec.Start)
	})
	return err
}

// splice copies between the client and the upstream connection in both
// directions until both ended (a tunnel and a TCP client through
// hbone.Stream.Splice, which writes the tunnel's bytes to the client from
// the connection's reader), passing each half-close on, and returns
// the bytes from the client (up) and to the client (down). An error in
// one direction (a reset) aborts both, since the other direction of a
// broken connection would otherwise wait forever.
func splice(client, upstream halfConn) (up, down int64, err error) {
	// A tunnel and a TCP connection: the stream splices itself.
	t, tc := asSplice(upstream, client)
	if t != nil {
		down, up, err = t.Splice(tc)
	} else if t, tc = asSplice(client, upstream); t != nil {
		up, down, err = t.Splice(tc)
	}
	if t != nil {
		client.Close()
		upstream.Close()
		if isClosedErr(err) {
			err = nil
		}
		return up, down, err
	}
	var (
		wg    sync.WaitGroup
		upErr error
		once  sync.Once
	)
	abort := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		up, upErr = io.Copy(upstream, client)
		if upErr != nil {
			abort()
			return
		}
		upstream.CloseWrite()
	}()
	down, err = io.Copy(client, upstream)
	if err != nil {
		abort()
	} else {
		client.CloseWrite()
	}
	wg.Wait()
	abort()
	if err == nil {
		err = upErr
	}
	if isClosedErr(err) {
		err = nil
	}
	return up, down, err
}

// asSplice returns a and b as a tunnel and a TCP connection, or nil.
func asSplice(a, b halfConn) (*tunnelConn, hbone.Socket) {
	t, ok := a.(*tunnelConn)
	if !ok {
		return nil, nil
	}
	tc, ok := b.(hbone.Socket)
	if !ok {
		return nil, nil
	}
	return t, tc
}

// isClosedErr reports errors that only say a connection was closed on
// purpose (by the other direction's abort, a removal), not a failure.
func isClosedErr(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}
