package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/rampartsec/rampart/internal/hbone"
)

// HBONE framing: a tunnel is one HTTP/2 stream opened with
//
//	:method CONNECT
//	:authority <original destination IP>:<port>   ("[v6]:port" for IPv6)
//
// on a TLS 1.3 connection with ALPN "h2" from the source workload's proxy
// to the destination workload's port 15008, both sides presenting their
// workload's certificate. The answer 200 opens the stream for the
// application's bytes in both directions (DATA frames); END_STREAM is the
// half-close of a direction. Any other status refuses the connection.
// This is the framing of Istio ambient's ztunnel, so the two interoperate
// at the wire level given a shared trust root.

// parseAuthority parses a CONNECT authority into the application address
// the tunnel should reach. It accepts exactly "IPv4:port" and
// "[IPv6]:port" with a port from 1 to 65535, no zone, no host names and no
// leading zeros, so that one destination has exactly one spelling and
// policy cannot be dodged by writing it differently.
func parseAuthority(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("authority %q: %w", s, err)
	}
	a := ap.Addr()
	switch {
	case a.Zone() != "":
		return netip.AddrPort{}, fmt.Errorf("authority %q: zoned address", s)
	case a.Is4In6():
		return netip.AddrPort{}, fmt.Errorf("authority %q: IPv4-mapped IPv6 address", s)
	case a.IsUnspecified() || a.IsMulticast():
		return netip.AddrPort{}, fmt.Errorf("authority %q: not a unicast address", s)
	case ap.Port() == 0:
		return netip.AddrPort{}, fmt.Errorf("authority %q: port 0", s)
	}
	if ap.String() != s {
		return netip.AddrPort{}, fmt.Errorf("authority %q: not in canonical form %q", s, ap.String())
	}
	return ap, nil
}

// pool holds the HBONE connections of the outbound side, one or more per
// (source workload, destination workload, destination address), each
// carrying many tunnels as Istio's ztunnel does: a new TLS handshake only
// when no pooled connection can take another stream.
type pool struct {
	p       *Proxy
	mu      sync.Mutex
	entries map[poolKey]*poolEntry
}

type poolKey struct {
	src string     // source workload key
	dst string     // destination workload key and service account
	ip  netip.Addr // destination address
}

type poolEntry struct {
	mu    sync.Mutex // held while dialing, so one flood of flows dials once
	conns []*h2conn
}

// h2conn is one pooled tunnel connection.
type h2conn struct {
	hc    *hbone.Conn
	peer  string // the server's verified SPIFFE ID
	local netip.AddrPort
}

func newPool(p *Proxy) *pool { return &pool{p: p, entries: map[poolKey]*poolEntry{}} }

func (pl *pool) entry(k poolKey) *poolEntry {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	e := pl.entries[k]
	if e == nil {
		e = &poolEntry{}
		pl.entries[k] = e
	}
	return e
}

// get returns a connection from src to dst at ip that can take another
// stream, dialing a new one if none can. Unless fresh, a pooled one is
// preferred.
func (pl *pool) get(ctx context.Context, ws *workloadState, dst Workload, ip netip.Addr, fresh bool) (*h2conn, error) {
	e := pl.entry(poolKey{ws.w.Key(), dst.Key() + "@" + dst.ServiceAccount, ip})
	e.mu.Lock()
	defer e.mu.Unlock()
	live := e.conns[:0]
	var found *h2conn
	for _, c := range e.conns {
		if c.hc.Closed() {
			continue
		}
		live = append(live, c)
		if found == nil && !fresh && c.hc.Available() {
			found = c
		}
	}
	clear(e.conns[len(live):])
	e.conns = live
	if found != nil {
		return found, nil
	}
	c, err := pl.p.dialHBONE(ctx, ws, dst, ip)
	if err != nil {
		return nil, err
	}
	e.conns = append(e.conns, c)
	return c, nil
}

// closeSource closes every pooled connection of a source workload.
func (pl *pool) closeSource(src string) {
	pl.mu.Lock()
	var gone []*poolEntry
	for k, e := range pl.entries {
		if k.src == src {
			gone = append(gone, e)
			delete(pl.entries, k)
		}
	}
	pl.mu.Unlock()
	for _, e := range gone {
		e.mu.Lock()
		for _, c := range e.conns {
			c.hc.Close()
		}
		e.conns = nil
		e.mu.Unlock()
	}
}

func (pl *pool) closeAll() {
	pl.mu.Lock()
	var srcs []string
	for k := range pl.entries {
		srcs = append(srcs, k.src)
	}
	pl.mu.Unlock()
	for _, s := range srcs {
		pl.closeSource(s)
	}
}

// dialHBONE opens a new tunnel connection from ws to dst at ip: TCP from
// inside ws's namespace with the proxy's mark, TLS 1.3 with ws's
// certificate, ALPN h2, HTTP/2.
func (p *Proxy) dialHBONE(ctx context.Context, ws *workloadState, dst Workload, ip netip.Addr) (*h2conn, error) {
	cfg, err := clientTLS(p.cfg.Certificates, ws.w, dst)
	if err != nil {
		return nil, err
	}
	tcp, err := p.dial(ctx, ws, netip.AddrPortFrom(ip, p.cfg.Ports.HBONE))
	if err != nil {
		return nil, err
	}
	tc := tls.Client(tcp, cfg)
	hctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		tcp.Close()
		return nil, &handshakeError{err}
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != alpnHBONE {
		tc.Close()
		return nil, &handshakeError{fmt.Errorf("server negotiated ALPN %q, want %q", st.NegotiatedProtocol, alpnHBONE)}
	}
	if len(st.PeerCertificates) == 0 {
		tc.Close()
		return nil, &handshakeError{errors.New("server sent no certificate")}
	}
	peer, err := principalOf(st.PeerCertificates[0])
	if err != nil {
		tc.Close()
		return nil, &handshakeError{err}
	}
	hc, err := hbone.NewClient(tc, p.hboneConfig(nil))
	if err != nil {
		tc.Close()
		return nil, err
	}
	local, _ := netip.ParseAddrPort(tcp.LocalAddr().String())
	return &h2conn{hc: hc, peer: peer, local: local}, nil
}

// hboneConfig is the tunnel connections' configuration: idle connections
// close after IdleTimeout, and a peer silent for 30 s is pinged and given
// up after 15 s more, as Istio's ztunnel and x/net/http2 do.
func (p *Proxy) hboneConfig(handler func(*hbone.Stream)) hbone.Config {
	return hbone.Config{
		Handler:              handler,
		IdleTimeout:          p.cfg.IdleTimeout,
		MaxConcurrentStreams: 1000,
		ReadIdleTimeout:      30 * time.Second,
		PingTimeout:          15 * time.Second,
	}
}

// handshakeError marks a failed tunnel handshake, which telemetry counts
// apart from refusals.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "hbone handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// StatusError is a tunnel the destination's proxy refused: 403 for a
// policy denial, 400 for a malformed request, 503 when the application
// did not accept the connection.
type StatusError struct{ Status int }

func (e *StatusError) Error() string {
	return "hbone connect refused: " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
}

// openTunnel opens a CONNECT stream from ws to the application address
// dst of workload dw. A pooled connection that turns out to be full or
// closing is passed over for a fresh one, once.
func (p *Proxy) openTunnel(ctx context.Context, ws *workloadState, dw Workload, dst netip.AddrPort) (*tunnelConn, error) {
	// The dial context only bounds the wait for the answer; the stream
	// then lives as long as the workload.
	hctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	defer cancel()
	authority := dst.String()
	var lastErr error
	for attempt := range 2 {
		c, err := p.pool.get(hctx, ws, dw, dst.Addr(), attempt > 0)
		if err != nil {
			return nil, err
		}
		s, err := c.hc.Open(hctx, authority)
		if err == nil {
			return &tunnelConn{
				Stream: s,
				local:  net.TCPAddrFromAddrPort(c.local),
				remote: net.TCPAddrFromAddrPort(dst),
				peer:   c.peer,
			}, nil
		}
		if se, ok := errors.AsType[*hbone.StatusError](err); ok {
			return nil, &StatusError{Status: se.Status}
		}
		lastErr = fmt.Errorf("hbone connect %s: %w", authority, err)
		if !errors.Is(err, hbone.ErrConnClosed) && !errors.Is(err, hbone.ErrConnFull) {
			return nil, lastErr
		}
	}
	return nil, lastErr
}

// tunnelConn is the client end of one HBONE stream as a net.Conn with
// half-close. Deadlines are not supported.
type tunnelConn struct {
	*hbone.Stream
	local  net.Addr
	remote net.Addr
	peer   string
}

func (t *tunnelConn) LocalAddr() net.Addr  { return t.local }
func (t *tunnelConn) RemoteAddr() net.Addr { return t.remote }

var errNoDeadline = errors.New("hbone streams do not support deadlines")

func (t *tunnelConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (t *tunnelConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (t *tunnelConn) SetWriteDeadline(time.Time) error { return errNoDeadline }
