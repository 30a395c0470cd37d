package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// L7: on ports where the Authorizer needs HTTP, the proxy terminates the
// inner byte stream with net/http's server (HTTP/1.1, and HTTP/2 with prior
// knowledge as gRPC clients speak it), authorizes every request, and
// forwards allowed ones with httputil.ReverseProxy over keep-alive
// connections to the application, in the protocol the request came in,
// dialled from inside the workload's namespace. net/http does the parsing
// (request smuggling defences, header limits, chunking, upgrades), not
// hand-written code.

// l7HeaderTimeout bounds the wait for a request's header on an idle inner
// connection, so a silent peer cannot hold a handler forever.
const l7HeaderTimeout = 30 * time.Second

// serveStreamHTTP serves prior-knowledge HTTP/2 on the inner stream of an
// HBONE tunnel, read through r. The stream has no deadlines, which
// net/http's server needs (it aborts its background read with a past
// deadline after each request), so the stream is bridged to one end of a
// net.Pipe, which has them, and the server serves the other end.
func (p *Proxy) serveStreamHTTP(ws *workloadState, t *tunnelConn, r io.Reader, conn Connection, rec Record) {
	inner, outer := net.Pipe()
	var in, out sync.WaitGroup
	in.Add(1)
	if !ws.goroutine(func() {
		defer in.Done()
		io.Copy(outer, r)
		outer.Close()
	}) {
		in.Done()
		outer.Close()
	}
	out.Add(1)
	if !ws.goroutine(func() {
		defer out.Done()
		io.Copy(t, outer)
		outer.Close()
	}) {
		out.Done()
		outer.Close()
	}
	local := net.TCPAddrFromAddrPort(rec.Destination)
	remote := net.TCPAddrFromAddrPort(conn.Source)
	p.serveHTTP(ws, &addrConn{Conn: inner, local: local, remote: remote}, conn, rec)
	// The server closed its end: the last response is through once the
	// out copier saw EOF; then the stream ends, and the in copier stops.
	out.Wait()
	t.CloseWrite()
	t.Close()
	outer.Close()
	in.Wait()
}

// addrConn gives a pipe end the tunnel's addresses, so that the request's
// RemoteAddr (and X-Forwarded-For) is the real client.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (a *addrConn) LocalAddr() net.Addr  { return a.local }
func (a *addrConn) RemoteAddr() net.Addr { return a.remote }

// serveHTTP serves prior-knowledge HTTP/2 on c until the
// client closes it or the workload is removed, authorizing each request,
// then emits the connection's record.
func (p *Proxy) serveHTTP(ws *workloadState, c net.Conn, conn Connection, rec Record) {
	cc := &countingConn{Conn: c}
	h := &l7Handler{p: p, ws: ws, conn: conn, rec: rec}
	h.rp = &httputil.ReverseProxy{
		Rewrite:       h.rewrite,
		Transport:     ws.upstream,
		FlushInterval: -1,
		ErrorLog:      discardLog,
		ErrorHandler:  h.upstreamError,
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Protocols:         &protos,
		Handler:           h,
		ReadHeaderTimeout: l7HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          discardLog,
		BaseContext:       func(net.Listener) context.Context { return ws.ctx },
	}
	l := newOneConnListener(cc, net.TCPAddrFromAddrPort(rec.Destination))
	srv.Serve(l)
	<-l.closed
	rec.BytesReceived, rec.BytesSent = cc.in.Load(), cc.out.Load()
	rec.forwarded = h.forwarded.Load()
	if rec.forwarded {
		p.countOpened(ReporterDestination, rec.SourceWorkload, rec.DestinationWorkload)
	}
	p.finish(rec, rec.Start)
}

// discardLog silences net/http's own logging on inspected connections:
// the proxy logs and records what matters itself. One logger for all.
var discardLog = log.New(io.Discard, "", 0)

// l7Handler authorizes and forwards the requests of one connection.
type l7Handler struct {
	p         *Proxy
	ws        *workloadState
	conn      Connection
	rec       Record
	rp        *httputil.ReverseProxy
	forwarded atomic.Bool
}

func (h *l7Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	path, query := splitTarget(r)
	req := Request{Connection: h.conn, Method: r.Method, Host: r.Host, Path: path, Query: query, Header: r.Header}
	d := h.p.authz.request(req)
	if d.Allow {
		// What goes on is the path the authorizer decided on (its normal
		// form), or the client's as sent.
		fwd := path
		if d.Path != "" {
			fwd = d.Path
		}
		if err := setPath(r.URL, fwd); err != nil {
			d = Decision{Status: http.StatusBadRequest, Body: "Bad Request", Reason: "path to forward: " + err.Error()}
		}
	}
	rec := h.rec
	rec.Kind, rec.Start = RecordRequest, start
	rec.Method, rec.Path = r.Method, path
	rec.Allowed, rec.Policy, rec.Reason = d.Allow, d.Policy, d.Reason
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	sw := &statusWriter{ResponseWriter: w}
	if !d.Allow {
		status, text := d.httpAnswer()
		sw.Header().Set("Content-Type", "text/plain")
		sw.Header().Set("Content-Length", strconv.Itoa(len(text)))
		sw.WriteHeader(status)
		io.WriteString(sw, text)
		h.p.log.Info("http request denied", slog.String("workload", h.ws.w.Key()), slog.String("principal", h.conn.SourcePrincipal),
			slog.String("source", h.conn.Source.String()), slog.String("method", r.Method), slog.String("path", path),
			slog.Int("status", status), slog.String("policy", d.Policy), slog.String("reason", d.Reason))
	} else {
		h.forwarded.Store(true)
		h.rp.ServeHTTP(sw, r)
	}
	rec.Status = sw.status
	if rec.Status == 0 {
		rec.Status = http.StatusOK
	}
	rec.BytesReceived, rec.BytesSent = body.n.Load(), sw.n
	rec.forwarded = false
	h.p.finish(rec, start)
}

// setPath makes u's path the escaped path p, which the request then
// carries byte for byte. net/url keeps p only when it is an escaping of
// the decoded path that it would accept itself; otherwise (a "|", a
// non-ASCII byte) it escapes the decoded path anew, which decodes every
// escape in p, an encoded "/" into a separator among them, so that the
// application would see other segments than the authorizer did. Such a
// path is refused, unless it has no escapes to lose.
func setPath(u *url.URL, p string) error {
	dec, err := url.PathUnescape(p)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = dec, p
	if u.EscapedPath() != p && strings.Contains(p, "%") {
		return fmt.Errorf("%q cannot be forwarded as it was authorized", p)
	}
	return nil
}

// splitTarget returns the path and raw query of the request target as the
// client sent them.
func splitTarget(r *http.Request) (path, query string) {
	if strings.HasPrefix(r.RequestURI, "/") {
		path, query, _ = strings.Cut(r.RequestURI, "?")
		return path, query
	}
	return r.URL.EscapedPath(), r.URL.RawQuery
}

// rewrite sends the request to the connection's original destination and
// sets the forwarding headers, replacing any the client sent, as Envoy
// does: X-Forwarded-For/-Host/-Proto, and X-Forwarded-Client-Cert with
// the verified principals of an mTLS peer.
func (h *l7Handler) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = netip.AddrPortFrom(h.rec.Destination.Addr(), h.rec.Destination.Port()).String()
	pr.Out.Host = pr.In.Host
	// Appended to, as on HTTP/1.1 and in Envoy (ReverseProxy removes
	// the client's before Rewrite).
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
	// Request trailers are not forwarded (see writeBody).
	pr.Out.Trailer = nil
	pr.Out.Header.Del("X-Forwarded-Client-Cert")
	if h.conn.SourcePrincipal != "" {
		pr.Out.Header.Set("X-Forwarded-Client-Cert", "By="+h.rec.DestinationPrincipal+";URI="+h.conn.SourcePrincipal)
	}
}

// upstreamError answers 503 when the application cannot be reached, as
// Envoy does, and 502 when it broke mid-response.
func (h *l7Handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		status = http.StatusServiceUnavailable
	}
	if errors.Is(err, context.Canceled) {
		status = 499 // the client went away; nothing will read this
	}
	h.p.log.Info("application error", slog.String("workload", h.ws.w.Key()), slog.String("path", r.URL.Path), slog.Any("error", err))
	w.WriteHeader(status)
}

// newUpstream returns a keep-alive transport of ws's prior-knowledge
// HTTP/2 connections to its applications (HTTP/1.1 has http1Conn); every
// connection is dialled from inside ws's namespace with the proxy's mark.
func (p *Proxy) newUpstream(ws *workloadState) *http.Transport {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Protocols: &protos,
		Proxy:     nil, // never an HTTP proxy from the agent's environment
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
			defer cancel()
			return p.dial(ctx, ws, ap)
		},
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       p.cfg.IdleTimeout,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
}

// statusWriter records the status and body bytes of a response. Unwrap
// lets http.ResponseController reach Flush and Hijack underneath, which
// ReverseProxy needs for streaming and protocol upgrades.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.n += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// countingBody counts the request body bytes the application read and,
// when progress is set, calls it after each read that moved.
type countingBody struct {
	io.ReadCloser
	n        atomic.Int64
	progress func()
}

func (c *countingBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	if n > 0 && c.progress != nil {
		c.progress()
	}
	return n, err
}

// countingConn counts a connection's bytes in both directions.
type countingConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.out.Add(int64(n))
	return n, err
}

// oneConnListener hands one connection to an http.Server and then
// reports closed once that connection is closed, which makes Serve
// return after the connection is done.
type oneConnListener struct {
	mu     sync.Mutex
	conn   net.Conn
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func newOneConnListener(c net.Conn, addr net.Addr) *oneConnListener {
	l := &oneConnListener{addr: addr, closed: make(chan struct{})}
	l.conn = &notifyConn{Conn: c, l: l}
	return l
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.addr }

// notifyConn tells its listener when the server closed it.
type notifyConn struct {
	net.Conn
	l *oneConnListener
}

func (n *notifyConn) Close() error {
	err := n.Conn.Close()
	n.l.once.Do(func() { close(n.l.closed) })
	return err
}

// CloseWrite passes a half-close on when the connection supports it
// (net/http uses it to close gracefully).
func (n *notifyConn) CloseWrite() error {
	if cw, ok := n.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
