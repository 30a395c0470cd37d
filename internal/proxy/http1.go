package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"github.com/rampartsec/rampart/internal/sockio"
)

// HTTP/1.1 on L7 ports. Each inspected connection (an HBONE stream or a
// captured plaintext connection) is served by one goroutine that reads a
// request with net/http's parser (http.ReadRequest: header limits,
// Content-Length and chunked framing, Transfer-Encoding over
// Content-Length), authorizes it, and writes it again with net/http's
// serializer (Request.Write) to a keep-alive connection of its own to the
// application, then reads the response (http.ReadResponse) and writes it
// back with framing the proxy chooses. Because every request is parsed and
// serialized anew, the application never sees the client's framing, which
// is what defeats request smuggling.
//
// It replaces, for HTTP/1.1, net/http's server and httputil.ReverseProxy
// (still used for prior-knowledge HTTP/2, see serveHTTP): those hand every
// request and response between four goroutines (server connection,
// handler, transport writer and reader), which cost more CPU than the
// whole tunnel. Here a request costs two wake-ups of one goroutine: its
// head arriving, and the application's answer.

const (
	// maxHeadBytes bounds a request's line and header (64 KiB, as the
	// proxy's net/http server had), counted from the connection: more
	// gets 431 and the connection closed. http.ReadRequest itself has no
	// bound.
	maxHeadBytes = 64 << 10
	// maxDiscard is how much of a denied request's body is read away to
	// keep the connection open; a larger body closes it instead.
	maxDiscard = 256 << 10
	// l7BufSize is the size of each read and write buffer: one HBONE
	// frame's payload.
	l7BufSize = 16 << 10
	// syncBodyMax is the largest request body written before the
	// response is read: the application's socket buffer takes it whether
	// or not the application reads it before answering. Larger bodies,
	// and bodies of unknown length, are written by a goroutine of their
	// own while the response is read, so that an application that answers
	// while it still reads (a streaming echo, an upload with progress)
	// cannot deadlock with the proxy.
	syncBodyMax = 64 << 10
	// bodyGrace is how long a request body still being written may take
	// to end after the application has answered in full. The common case
	// (the application read the whole body, then answered) ends within
	// microseconds; an application that answered early (413, say) and a
	// client still sending have the connection closed after it.
	bodyGrace = time.Second
)

// hopHeaders are the hop-by-hop headers of RFC 9110 7.6.1, which a proxy
// must not forward, besides those the Connection header names.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

var l7Bufs = sync.Pool{New: func() any { b := make([]byte, l7BufSize); return &b }}

// serveL7 serves HTTP on c until the client or the application ends it,
// authorizing every request, then emits the connection's record.
// Prior-knowledge HTTP/2 (gRPC) goes to net/http's server.
func (p *Proxy) serveL7(ws *workloadState, c halfConn, conn Connection, rec Record) {
	h := &http1Conn{p: p, ws: ws, c: c, conn: conn, rec: rec}
	h.rc = &readCounter{r: c, n: &h.in}
	h.br = bufio.NewReaderSize(h.rc, l7BufSize)
	h.bw = bufio.NewWriterSize(writeCounter{c, &h.out}, l7BufSize)
	h.timer = time.AfterFunc(p.cfg.IdleTimeout, h.abort)
	h2c := startsWithPreface(h.br)
	h.timer.Stop()
	if h2c {
		p.serveH2C(ws, c, h.br, conn, rec)
		return
	}
	h.serve()
}

// startsWithPreface reports whether br starts with the whole HTTP/2
// client preface, reading no further than the first byte that differs:
// an HTTP/1.1 request whose method merely starts with "PRI" is served
// here, not by net/http's server.
func startsWithPreface(br *bufio.Reader) bool {
	for n := 1; n <= len(http2.ClientPreface); n++ {
		b, err := br.Peek(n)
		if err != nil || b[n-1] != http2.ClientPreface[n-1] {
			return false
		}
	}
	return true
}

// http1Conn is one inspected HTTP/1.1 connection and its connection to
// the application.
type http1Conn struct {
	p    *Proxy
	ws   *workloadState
	c    halfConn
	rc   *readCounter // under br: counts, and bounds request heads
	br   *bufio.Reader
	bw   *bufio.Writer
	conn Connection
	rec  Record // the connection's; each request's record starts as a copy

	up  *sockio.Conn // to the application, nil until needed
	ubr *bufio.Reader
	ubw *bufio.Writer
	// upc is up for abort, which runs on the timer's goroutine.
	upc atomic.Pointer[sockio.Conn]
	// timer closes both connections when it fires (abort): armed while
	// waiting for a request, for the rest of its head, and while a
	// request is forwarded, where every read of its body and write of
	// its response re-arms it (a stream idle timeout, as Envoy's).
	timer *time.Timer
	// http10 is set while answering an HTTP/1.0 request: such a client
	// keeps its connection only when told so, and takes no 1xx answer.
	http10 bool
	// srcIP and xfcc are the forwarding headers' values of this
	// connection, made at its first forwarded request.
	srcIP, xfcc string

	in, out   int64 // bytes from and to the client
	forwarded bool
	metrics   requestMetrics
}

func (h *http1Conn) serve() {
	defer h.done()
	// One timer (made in serveL7), armed only while waiting: for the next
	// request (the idle timeout), for the rest of its head (the header
	// timeout) and for progress while it is forwarded. Closing the
	// connections makes the pending read or write fail.
	timer := h.timer
	defer timer.Stop()
	for {
		timer.Reset(h.p.cfg.IdleTimeout)
		_, err := h.br.Peek(1)
		if err == nil {
			timer.Reset(l7HeaderTimeout)
			h.rc.limit = h.in + maxHeadBytes
			var req *http.Request
			req, err = http.ReadRequest(h.br)
			h.rc.limit = 0
			timer.Stop()
			if err == nil {
				if !h.serveRequest(req) {
					return
				}
				continue
			}
			if errors.Is(err, errHeadTooLarge) {
				h.writeSimple(http.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large", true)
			} else {
				h.writeSimple(http.StatusBadRequest, "Bad Request", true)
			}
		}
		return
	}
}

// abort closes the client's connection and the application's, ending
// whatever waits on either.
func (h *http1Conn) abort() {
	h.c.Close()
	if up := h.upc.Load(); up != nil {
		up.Close()
	}
}

// progress re-arms the timer after a forwarded request moved.
func (h *http1Conn) progress() { h.timer.Reset(h.p.cfg.IdleTimeout) }

// done closes the application connection, half-closes the client's and
// emits the connection's record.
func (h *http1Conn) done() {
	h.dropUpstream()
	h.c.CloseWrite()
	rec := h.rec
	rec.BytesReceived, rec.BytesSent = h.in, h.out
	rec.forwarded = h.forwarded
	if rec.forwarded {
		h.p.countOpened(ReporterDestination, rec.SourceWorkload, rec.DestinationWorkload)
	}
	h.p.finish(rec, rec.Start)
}

// serveRequest authorizes and answers one request and reports whether the
// connection goes on.
func (h *http1Conn) serveRequest(req *http.Request) bool {
	start := time.Now()
	if status := checkTarget(req); status != 0 {
		h.writeSimple(status, http.StatusText(status), true)
		rec := h.rec
		rec.Kind, rec.Start, rec.Method, rec.Status = RecordRequest, start, req.Method, status
		rec.Reason = "request target " + strconv.Quote(req.RequestURI) + " not served"
		rec.Duration = time.Since(start)
		h.p.emitRequest(rec, &h.metrics)
		return false
	}
	path, query := splitTarget(req)
	d := h.p.authz.request(Request{Connection: h.conn, Method: req.Method, Host: req.Host, Path: path, Query: query, Header: req.Header})
	// What goes on is the client's target byte for byte, unless the
	// authorizer decided on another spelling of the path (its normal
	// form), which then goes on instead.
	target := req.RequestURI
	if d.Allow && d.Path != "" && d.Path != path {
		target = d.Path
		if query != "" || req.URL.ForceQuery || strings.HasSuffix(req.RequestURI, "?") {
			target += "?" + query
		}
	} else if !strings.HasPrefix(target, "/") && target != "*" {
		target = req.URL.RequestURI() // absolute form: sent on in origin form
	}
	rec := h.rec
	rec.Kind, rec.Start = RecordRequest, start
	rec.Method, rec.Path = req.Method, path
	rec.Allowed, rec.Policy, rec.Reason = d.Allow, d.Policy, d.Reason
	rec.forwarded = false
	h.http10 = !req.ProtoAtLeast(1, 1)
	retryable := req.Body == http.NoBody && replayable(req)
	var body *countingBody
	if req.Body != http.NoBody {
		body = &countingBody{ReadCloser: req.Body, progress: h.progress}
		req.Body = body
	}
	keep := !req.Close
	if !d.Allow {
		status, text := d.httpAnswer()
		keep = keep && discard(req)
		h.writeSimple(status, text, !keep)
		rec.Status, rec.BytesSent = status, int64(len(text))
		h.p.log.Info("http request denied", slog.String("workload", h.ws.w.Key()), slog.String("principal", h.conn.SourcePrincipal),
			slog.String("source", h.conn.Source.String()), slog.String("method", req.Method), slog.String("path", path),
			slog.Int("status", status), slog.String("policy", d.Policy), slog.String("reason", d.Reason))
	} else {
		h.forwarded = true
		rec.Status, rec.BytesSent, keep = h.forward(req, target, keep, retryable)
	}
	if body != nil {
		rec.BytesReceived = body.n.Load()
	}
	rec.Duration = time.Since(start)
	h.p.emitRequest(rec, &h.metrics)
	return keep
}

// checkTarget returns 0 for the request targets whose path the
// application will see as the authorizer saw it: origin form ("/..."),
// absolute form with an http or https URL (forwarded in origin form, "/"
// for an empty path) and "*" for OPTIONS. Otherwise it returns the status
// to refuse the request with, before authorization: 405 for CONNECT
// (tunnels are not forwarded on inspected ports, as Envoy's default), 400
// for the rest, whose path would be "" to the authorizer and "/" to the
// application.
func checkTarget(req *http.Request) int {
	u := req.URL
	switch {
	case req.Method == http.MethodConnect:
		return http.StatusMethodNotAllowed
	case req.RequestURI == "*":
		if req.Method != http.MethodOptions {
			return http.StatusBadRequest
		}
	case strings.HasPrefix(req.RequestURI, "/"):
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Opaque == "":
		if u.Path == "" {
			u.Path, u.RawPath = "/", ""
		}
	default:
		return http.StatusBadRequest
	}
	return 0
}

// discard reads away a denied request's body, reporting whether the
// connection can serve another request after it.
func discard(req *http.Request) bool {
	if req.Body == http.NoBody {
		return true
	}
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		return false // the client holds its body back; close instead
	}
	n, err := io.CopyN(io.Discard, req.Body, maxDiscard+1)
	return errors.Is(err, io.EOF) && n <= maxDiscard
}

// forward sends an allowed request to the application and its answer
// back. It returns the status, the response body bytes and whether the
// connection goes on.
func (h *http1Conn) forward(req *http.Request, target string, keep, retryable bool) (int, int64, bool) {
	h.progress()
	defer h.timer.Stop()
	// Only WebSocket is switched to, as Istio's default: after a 101 the
	// bytes are spliced unread, and an h2c upgrade would carry requests
	// that nothing authorizes.
	upgrade := upgradeType(req.Header)
	if !strings.EqualFold(upgrade, "websocket") {
		upgrade = ""
	}
	removeHopHeaders(req.Header)
	// The proxy frames the body itself (writeRequest); HTTP2-Settings
	// belongs to an h2c upgrade, which is not forwarded.
	delete(req.Header, "Content-Length")
	delete(req.Header, "Http2-Settings")
	if upgrade != "" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", upgrade)
	}
	h.setForwarded(req)
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// Answered here, as Envoy does by default, so the body comes
		// while the request is written to the application.
		req.Header.Del("Expect")
		h.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := h.bw.Flush(); err != nil {
			return 499, 0, false
		}
	}
	resp, body, err := h.roundTrip(req, target, retryable)
	if err != nil {
		status := http.StatusBadGateway
		if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
			status = http.StatusServiceUnavailable
		}
		h.p.log.Info("application error", slog.String("workload", h.ws.w.Key()), slog.String("path", req.URL.Path), slog.Any("error", err))
		// The request body may be half read: the connection ends.
		h.writeSimple(status, "", true)
		h.endBody(body, false)
		return status, 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !h.endBody(body, true) {
			return http.StatusBadGateway, 0, false
		}
		// A switched connection lives as long as its peers want, idle or
		// not, as a plain TCP tunnel does.
		h.timer.Stop()
		return h.switchProtocols(upgrade, resp)
	}
	n, err := h.writeResponse(req, resp, &keep)
	if resp.Close || err != nil {
		h.dropUpstream()
	}
	if err != nil {
		keep = false
	}
	if !h.endBody(body, keep) {
		keep = false
	}
	return resp.StatusCode, n, keep
}

// endBody waits for the goroutine writing a request body (body, from
// roundTrip; nil when there is none) and reports whether the body went
// whole to the application. A body still being written gets bodyGrace to
// end when wait is set (the response is complete); otherwise, or after
// that, both connections are closed first, since neither can carry
// another request with the body unfinished.
func (h *http1Conn) endBody(body <-chan error, wait bool) bool {
	if body == nil {
		return true
	}
	done := func(err error) bool {
		if err != nil {
			h.dropUpstream()
		}
		return err == nil
	}
	select {
	case err := <-body:
		return done(err)
	default:
	}
	if wait {
		t := time.NewTimer(bodyGrace)
		defer t.Stop()
		select {
		case err := <-body:
			return done(err)
		case <-t.C:
		}
	}
	h.bw.Flush()
	h.abort()
	<-body
	h.dropUpstream()
	return false
}

// replayable reports whether a request may be sent again after the
// application closed a kept-alive connection without answering: the
// methods net/http's Transport replays, which change nothing on the
// server by definition, or a request carrying an idempotency key.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// roundTrip writes req to the application connection, dialing it when
// there is none, and reads the response, passing informational answers
// (1xx but 101) on to HTTP/1.1 clients. A body larger than syncBodyMax,
// or of unknown length, is written by a goroutine of its own while the
// response is read; its outcome arrives on body (nil otherwise), which
// the caller must wait for (endBody) before the connections serve
// anything else. A kept-alive connection the application closed before
// answering is redialed once for a replayable request without a body.
func (h *http1Conn) roundTrip(req *http.Request, target string, retryable bool) (resp *http.Response, body <-chan error, err error) {
	for attempt := 0; ; attempt++ {
		reused := h.up != nil
		if !reused {
			if err := h.dialUpstream(); err != nil {
				return nil, nil, err
			}
		}
		body, err = h.writeRequest(req, target)
		if err != nil && body == nil {
			err = &noAnswerError{err} // not sent whole: not seen
		} else if err == nil {
			// An error here, before any byte of an answer, is what a
			// closed idle connection gives; a later one (a partial
			// answer) means the application saw the request.
			if _, err = h.ubr.Peek(1); err != nil {
				err = &noAnswerError{err}
			}
		}
		for err == nil {
			resp, err = http.ReadResponse(h.ubr, req)
			if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
				break
			}
			if h.http10 {
				continue // RFC 9110 15.2: no 1xx to an HTTP/1.0 client
			}
			removeHopHeaders(resp.Header)
			h.writeHead(resp.Status, resp.Header, false)
			err = h.bw.Flush()
		}
		if err == nil {
			return resp, body, nil
		}
		h.dropUpstream()
		var na *noAnswerError
		if !reused || attempt > 0 || !retryable || !errors.As(err, &na) {
			return nil, body, err
		}
	}
}

// noAnswerError is a failure of the application connection before any
// byte of an answer: the only one after which a request may be replayed.
type noAnswerError struct{ err error }

func (e *noAnswerError) Error() string { return "no answer: " + e.err.Error() }
func (e *noAnswerError) Unwrap() error { return e.err }

// writeRequest writes req's head to the application and its body: here
// when it is known to be at most syncBodyMax, else on a goroutine whose
// outcome arrives on body.
func (h *http1Conn) writeRequest(req *http.Request, target string) (body <-chan error, err error) {
	if err := writeHead(h.ubw, req, target); err != nil {
		return nil, err
	}
	if req.ContentLength >= 0 && req.ContentLength <= syncBodyMax {
		return nil, writeBody(h.ubw, req, h.ubw)
	}
	if err := h.ubw.Flush(); err != nil {
		return nil, err
	}
	c := make(chan error, 1)
	go func() { c <- writeBody(h.ubw, req, flushEach{h.ubw}) }()
	return c, nil
}

// flushEach passes every piece of a streamed body on at once: the client
// may wait for an answer to it.
type flushEach struct{ w *bufio.Writer }

func (f flushEach) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// writeHead writes a request head to the application: the request line
// with target, Host, the headers as they are now and framing of the
// proxy's choosing (Content-Length when the length is known, else
// chunked). It keeps the application connection alive whatever the client
// asked of its own.
func writeHead(w *bufio.Writer, req *http.Request, target string) error {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	switch {
	case req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case req.ContentLength < 0:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if err := req.Header.Write(w); err != nil {
		return err
	}
	_, err := w.WriteString("\r\n")
	return err
}

// writeBody writes req's body to w, through out, in the framing
// writeHead announced, then flushes. Request trailers are dropped, as
// Envoy does for HTTP/1 by default: nothing authorizes them, and an
// application that merges them into the header would take a forged
// X-Forwarded-Client-Cert from one.
func writeBody(w *bufio.Writer, req *http.Request, out io.Writer) error {
	switch {
	case req.ContentLength < 0:
		cw := httputil.NewChunkedWriter(out)
		if _, err := io.Copy(cw, req.Body); err != nil {
			return err
		}
		cw.Close()
		w.WriteString("\r\n")
	case req.ContentLength > 0:
		if _, err := io.Copy(out, req.Body); err != nil {
			return err
		}
	}
	return w.Flush()
}

func (h *http1Conn) dialUpstream() error {
	ctx, cancel := context.WithTimeout(h.ws.ctx, h.p.cfg.ConnectTimeout)
	defer cancel()
	up, err := h.p.dialFrom(ctx, h.ws, h.conn.Source, h.rec.Destination)
	if err != nil {
		return err
	}
	if !h.ws.track(up) {
		return net.ErrClosed
	}
	h.up = up
	h.upc.Store(up)
	if h.ubr == nil {
		h.ubr = bufio.NewReaderSize(up, l7BufSize)
		h.ubw = bufio.NewWriterSize(up, 4<<10)
	} else {
		h.ubr.Reset(up)
		h.ubw.Reset(up)
	}
	return nil
}

func (h *http1Conn) dropUpstream() {
	h.upc.Store(nil)
	if h.up != nil {
		h.ws.untrack(h.up)
		h.up.Close()
		h.up = nil
	}
}

// writeResponse writes resp to the client with framing chosen here: the
// application's Content-Length when it gave one, else chunked (HTTP/1.1
// clients) or the end of the connection (HTTP/1.0).
func (h *http1Conn) writeResponse(req *http.Request, resp *http.Response, keep *bool) (int64, error) {
	removeHopHeaders(resp.Header)
	appLength := resp.Header["Content-Length"]
	delete(resp.Header, "Content-Length")
	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNotModified
	hasBody := !noBody && resp.StatusCode != http.StatusNoContent
	chunked := false
	switch {
	case resp.StatusCode == http.StatusNoContent:
		// RFC 9110 8.6: no Content-Length in a 204.
	case noBody:
		// The length of the representation a GET would get (RFC 9110
		// 8.6), passed on when it is one valid number, not 0 for the
		// empty body that follows.
		if len(appLength) == 1 {
			if _, err := strconv.ParseUint(appLength[0], 10, 63); err == nil {
				resp.Header["Content-Length"] = appLength
			}
		}
	case resp.ContentLength >= 0:
		resp.Header["Content-Length"] = []string{strconv.FormatInt(resp.ContentLength, 10)}
	case !hasBody:
	case req.ProtoAtLeast(1, 1):
		chunked = true
		resp.Header["Transfer-Encoding"] = []string{"chunked"}
		if len(resp.Trailer) > 0 {
			names := make([]string, 0, len(resp.Trailer))
			for k := range resp.Trailer {
				names = append(names, k)
			}
			resp.Header["Trailer"] = []string{strings.Join(names, ", ")}
		}
	default:
		*keep = false
	}
	h.writeHead(resp.Status, resp.Header, !*keep)
	if !hasBody {
		return 0, h.bw.Flush()
	}
	var w io.Writer = h.bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(h.bw)
		w = cw
	}
	n, err := h.copyBody(w, resp.Body)
	if err != nil {
		return n, err
	}
	if chunked {
		cw.Close()
		resp.Trailer.Write(h.bw)
		h.bw.WriteString("\r\n")
	}
	return n, h.bw.Flush()
}

// copyBody copies a response body, flushing to the client whenever the
// application has nothing more buffered, so that streamed responses
// (server-sent events, long polls) reach the client as they come and a
// small response leaves in one write.
func (h *http1Conn) copyBody(w io.Writer, body io.Reader) (int64, error) {
	bp := l7Bufs.Get().(*[]byte)
	defer l7Bufs.Put(bp)
	return io.CopyBuffer(flushingWriter{w, h}, struct{ io.Reader }{body}, *bp)
}

// flushingWriter writes to w and then flushes the client's buffer when the
// application has nothing more buffered.
type flushingWriter struct {
	w io.Writer
	h *http1Conn
}

func (f flushingWriter) Write(b []byte) (int, error) {
	f.h.progress()
	n, err := f.w.Write(b)
	if err == nil && f.h.ubr.Buffered() == 0 {
		err = f.h.bw.Flush()
	}
	return n, err
}

// switchProtocols answers 101 for an upgrade the application accepted
// (WebSocket and the like) and then copies bytes both ways until the
// connection ends.
func (h *http1Conn) switchProtocols(upgrade string, resp *http.Response) (int, int64, bool) {
	got := upgradeType(resp.Header)
	if upgrade == "" || !strings.EqualFold(got, upgrade) {
		h.writeSimple(http.StatusBadGateway, "", true)
		return http.StatusBadGateway, 0, false
	}
	removeHopHeaders(resp.Header)
	resp.Header.Set("Connection", "Upgrade")
	resp.Header.Set("Upgrade", got)
	h.writeHead(resp.Status, resp.Header, false)
	if err := h.bw.Flush(); err != nil {
		return http.StatusSwitchingProtocols, 0, false
	}
	// Bytes either side sent right behind the heads go first.
	if n := h.br.Buffered(); n > 0 {
		b, _ := h.br.Peek(n)
		h.up.Write(b)
		h.br.Discard(n)
	}
	if n := h.ubr.Buffered(); n > 0 {
		b, _ := h.ubr.Peek(n)
		h.c.Write(b)
		h.out += int64(n)
		h.ubr.Discard(n)
	}
	up, down, _ := splice(h.c, h.up)
	h.in += up
	h.out += down
	return http.StatusSwitchingProtocols, down, false
}

// writeHead writes a status line and header block to the client buffer.
func (h *http1Conn) writeHead(status string, header http.Header, close bool) {
	h.bw.WriteString("HTTP/1.1 ")
	h.bw.WriteString(status)
	h.bw.WriteString("\r\n")
	switch {
	case close:
		h.bw.WriteString("Connection: close\r\n")
	case h.http10:
		h.bw.WriteString("Connection: keep-alive\r\n")
	}
	header.Write(h.bw)
	h.bw.WriteString("\r\n")
}

// writeSimple answers with a plain-text body the proxy made itself.
func (h *http1Conn) writeSimple(status int, text string, close bool) {
	hdr := http.Header{"Content-Length": {strconv.Itoa(len(text))}}
	if text != "" {
		hdr["Content-Type"] = []string{"text/plain"}
	}
	h.writeHead(strconv.Itoa(status)+" "+http.StatusText(status), hdr, close)
	h.bw.WriteString(text)
	h.bw.Flush()
}

// setForwarded sets the forwarding headers, replacing any the client
// sent except that X-Forwarded-For is appended to, as Envoy does:
// X-Forwarded-For/-Host/-Proto, and X-Forwarded-Client-Cert with the
// verified principals of an mTLS peer.
func (h *http1Conn) setForwarded(req *http.Request) {
	if h.srcIP == "" { // once per connection: neither changes
		h.srcIP = h.conn.Source.Addr().String()
		if h.conn.SourcePrincipal != "" {
			h.xfcc = "By=" + h.rec.DestinationPrincipal + ";URI=" + h.conn.SourcePrincipal
		}
	}
	ip := h.srcIP
	if prior := req.Header["X-Forwarded-For"]; len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	req.Header["X-Forwarded-For"] = []string{ip}
	req.Header["X-Forwarded-Host"] = []string{req.Host}
	req.Header["X-Forwarded-Proto"] = []string{"http"}
	delete(req.Header, "X-Forwarded-Client-Cert")
	if h.xfcc != "" {
		req.Header["X-Forwarded-Client-Cert"] = []string{h.xfcc}
	}
}

// upgradeType returns the protocol a message asks to switch to, or "".
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// removeHopHeaders deletes the hop-by-hop headers, those the Connection
// header names first.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		if name == "Te" && httpguts.HeaderValuesContainsToken(h["Te"], "trailers") {
			h["Te"] = []string{"trailers"} // the one value that may pass (gRPC)
			continue
		}
		delete(h, name)
	}
}

// serveH2C serves prior-knowledge HTTP/2 with net/http's server. On a
// tunnel, whose stream has no deadlines, through a net.Pipe bridge.
func (p *Proxy) serveH2C(ws *workloadState, c halfConn, br *bufio.Reader, conn Connection, rec Record) {
	bc := &bufferedConn{halfConn: c, r: br}
	if t, ok := c.(*tunnelConn); ok {
		p.serveStreamHTTP(ws, t, bc, conn, rec)
		return
	}
	p.serveHTTP(ws, bc, conn, rec)
}

// bufferedConn reads through the buffer that already holds the first
// bytes of the connection.
type bufferedConn struct {
	halfConn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// errHeadTooLarge fails a request head longer than maxHeadBytes.
var errHeadTooLarge = errors.New("request head too large")

// readCounter counts a connection's bytes and, while limit is set, fails
// reads beyond it: the bound on a request's head.
type readCounter struct {
	r     io.Reader
	n     *int64
	limit int64 // 0: none
}

func (c *readCounter) Read(b []byte) (int, error) {
	if c.limit > 0 {
		if *c.n >= c.limit {
			return 0, errHeadTooLarge
		}
		b = b[:min(int64(len(b)), c.limit-*c.n)]
	}
	n, err := c.r.Read(b)
	*c.n += int64(n)
	return n, err
}

type writeCounter struct {
	w io.Writer
	n *int64
}

func (c writeCounter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	*c.n += int64(n)
	return n, err
}
