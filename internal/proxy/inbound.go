package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/rampartsec/rampart/internal/hbone"
)

// handleHBONE serves one TLS connection accepted on the HBONE listener of
// ws: the handshake (client certificate required and verified by the
// Certificates hook), then HTTP/2 with one CONNECT stream per tunnel.
func (p *Proxy) handleHBONE(ws *workloadState, c net.Conn) {
	start := time.Now()
	src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	fail := func(reason string, err error) {
		p.log.Info("hbone connection refused", slog.String("workload", ws.w.Key()), slog.String("source", src.String()), slog.String("reason", reason), slog.Any("error", err))
		p.finish(Record{
			Kind: RecordConnection, Reporter: ReporterDestination, Transport: TransportHBONE,
			SourceWorkload: p.sourceWorkload(src.Addr(), ""), DestinationWorkload: ws.w.Key(),
			DestinationPrincipal: ws.w.Principal(p.cfg.TrustDomain), Source: src, Start: start,
			Reason: reason, Error: err.Error(),
		}, start)
	}
	cfg, err := serverTLS(p.cfg.Certificates, ws.w)
	if err != nil {
		fail("no usable server certificate", err)
		return
	}
	tc := tls.Server(c, cfg)
	hctx, cancel := context.WithTimeout(ws.ctx, p.cfg.HandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		fail(reasonHandshake, err)
		return
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != alpnHBONE {
		fail(reasonHandshake, fmt.Errorf("client negotiated ALPN %q, want %q", st.NegotiatedProtocol, alpnHBONE))
		return
	}
	if len(st.PeerCertificates) == 0 {
		// Unreachable with a config checkServer accepted; kept so that a
		// future change there cannot admit an anonymous peer.
		fail(reasonHandshake, fmt.Errorf("client sent no certificate"))
		return
	}
	principal, err := principalOf(st.PeerCertificates[0])
	if err != nil {
		fail("peer has no SPIFFE ID", err)
		return
	}
	h := &hboneHandler{p: p, ws: ws, src: src, principal: principal, sni: st.ServerName,
		srcWorkload: p.sourceWorkload(src.Addr(), principal)}
	hbone.Serve(tc, p.hboneConfig(h.serveStream))
}

// sourceWorkload names the workload at ip for telemetry; with a principal
// only if the workload's identity matches it, so a record never names a
// workload the certificate does not vouch for.
func (p *Proxy) sourceWorkload(ip netip.Addr, principal string) string {
	w, _, err := p.resolveChecked(ip)
	if err != nil || w.Name == "" {
		return ""
	}
	if principal != "" && w.Principal(p.cfg.TrustDomain) != principal {
		return ""
	}
	return w.Key()
}

// hboneHandler answers the CONNECT streams of one authenticated HBONE
// connection.
type hboneHandler struct {
	p           *Proxy
	ws          *workloadState
	src         netip.AddrPort
	principal   string
	sni         string
	srcWorkload string
}

// serveStream checks, in order: the authority is a canonical address of
// this workload on a port that is not the proxy's; AuthorizeConn allows;
// then, for L7 ports, answers 200 and serves HTTP with per-request
// authorization, or else connects to the application and answers 200 (503
// if the application refuses) and splices bytes. (A method other than
// CONNECT never gets here: hbone answers it 405.)
func (h *hboneHandler) serveStream(s *hbone.Stream) {
	p, ws := h.p, h.ws
	start := time.Now()
	rec := Record{
		Kind: RecordConnection, Reporter: ReporterDestination, Transport: TransportHBONE,
		SourceWorkload: h.srcWorkload, DestinationWorkload: ws.w.Key(),
		SourcePrincipal: h.principal, DestinationPrincipal: ws.w.Principal(p.cfg.TrustDomain),
		Source: h.src, Start: start,
	}
	refuse := func(status int, reason string) {
		rec.Status = status
		if rec.Reason == "" {
			rec.Reason = reason
		}
		s.Respond(status)
		p.log.Info("hbone stream refused", slog.String("workload", ws.w.Key()), slog.String("principal", h.principal),
			slog.String("source", h.src.String()), slog.String("destination", rec.Destination.String()),
			slog.Int("status", status), slog.String("policy", rec.Policy), slog.String("reason", rec.Reason))
		p.finish(rec, start)
	}
	dst, err := parseAuthority(s.Authority())
	if err != nil {
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	rec.Destination = dst
	if !ws.w.owns(dst.Addr()) {
		refuse(http.StatusBadRequest, fmt.Sprintf("authority %s is not an address of %s", dst.Addr(), ws.w.Key()))
		return
	}
	if p.cfg.Ports.has(dst.Port()) {
		refuse(http.StatusBadRequest, fmt.Sprintf("authority port %d is the proxy's", dst.Port()))
		return
	}
	conn := Connection{
		Transport: TransportHBONE, SourcePrincipal: h.principal, Source: h.src,
		Destination: ws.w, DestinationPort: dst.Port(), SNI: h.sni,
	}
	d := p.authz.conn(conn)
	rec.Policy, rec.Reason = d.Policy, d.Reason
	if !d.Allow {
		refuse(http.StatusForbidden, "denied")
		return
	}
	l7, err := p.authz.needsHTTP(ws.w, dst.Port())
	if err != nil {
		rec.Reason = err.Error()
		refuse(http.StatusForbidden, "")
		return
	}
	if l7 {
		rec.Allowed, rec.Status = true, http.StatusOK
		if err := s.Respond(http.StatusOK); err != nil {
			rec.Error = err.Error()
			p.finish(rec, start)
			return
		}
		p.serveL7(ws, &tunnelConn{Stream: s, local: net.TCPAddrFromAddrPort(dst), remote: net.TCPAddrFromAddrPort(h.src)}, conn, rec)
		return
	}
	ctx, cancel := context.WithTimeout(ws.ctx, p.cfg.ConnectTimeout)
	up, err := p.dialFrom(ctx, ws, h.src, dst)
	cancel()
	if err != nil {
		rec.Allowed, rec.Error = true, err.Error()
		refuse(http.StatusServiceUnavailable, "application refused the connection")
		return
	}
	if !ws.track(up) {
		return
	}
	defer ws.untrack(up)
	defer up.Close()
	rec.Allowed, rec.Status, rec.forwarded = true, http.StatusOK, true
	p.countOpened(ReporterDestination, rec.SourceWorkload, rec.DestinationWorkload)
	if err := s.Respond(http.StatusOK); err != nil {
		rec.Error = err.Error()
		p.finish(rec, start)
		return
	}
	rec.BytesReceived, rec.BytesSent, err = s.Splice(up)
	if !isClosedErr(err) {
		rec.Error = err.Error()
	}
	p.finish(rec, start)
}

// handlePlaintext serves a connection captured on the inbound plaintext
// listener: checks, in order, that its original destination is this
// workload and not a proxy port, that peer authentication admits
// plaintext, and AuthorizeConn; then serves HTTP per request (L7 ports) or
// connects to the application and copies bytes.
func (p *Proxy) handlePlaintext(ws *workloadState, c net.Conn) {
	start := time.Now()
	src, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	rec := Record{
		Kind: RecordConnection, Reporter: ReporterDestination, Transport: TransportPlaintext,
		SourceWorkload: p.sourceWorkload(src.Addr(), ""), DestinationWorkload: ws.w.Key(),
		Source: src, Start: start,
	}
	refuse := func(reason string, err error) {
		if rec.Reason == "" {
			rec.Reason = reason
		}
		if err != nil {
			rec.Error = err.Error()
		}
		p.log.Info("plaintext connection refused", slog.String("workload", ws.w.Key()), slog.String("source", src.String()),
			slog.String("destination", rec.Destination.String()), slog.String("policy", rec.Policy), slog.String("reason", rec.Reason), slog.Any("error", err))
		p.finish(rec, start)
	}
	dst, err := originalDst(c)
	if err != nil {
		refuse("no original destination", err)
		return
	}
	rec.Destination = dst
	if !ws.w.owns(dst.Addr()) {
		refuse(fmt.Sprintf("original destination %s is not an address of the workload", dst.Addr()), nil)
		return
	}
	if p.cfg.Ports.has(dst.Port()) {
		refuse(fmt.Sprintf("port %d is the proxy's", dst.Port()), nil)
		return
	}
	mode, err := p.authz.peerMode(ws.w, dst.Port())
	if err != nil {
		refuse("peer authentication unknown, treated as STRICT", err)
		return
	}
	if mode == PeerStrict {
		p.log.Warn("plaintext connection closed: peer authentication is STRICT, only mTLS (HBONE) is accepted",
			slog.String("workload", ws.w.Key()), slog.String("source", src.String()), slog.Int("port", int(dst.Port())))
		rec.Reason = "peer authentication STRICT: plaintext refused"
		p.finish(rec, start)
		return
	}
	conn := Connection{Transport: TransportPlaintext, Source: src, Destination: ws.w, DestinationPort: dst.Port()}
	d := p.authz.conn(conn)
	rec.Policy, rec.Reason = d.Policy, d.Reason
	if !d.Allow {
		refuse("denied", nil)
		return
	}
	l7, err := p.authz.needsHTTP(ws.w, dst.Port())
	if err != nil {
		rec.Reason = ""
		refuse("needs http unknown", err)
		return
	}
	rec.Allowed = true
	if l7 {
		p.serveL7(ws, c.(halfConn), conn, rec)
		return
	}
	ctx, cancel := context.WithTimeout(ws.ctx, p.cfg.ConnectTimeout)
	up, err := p.dialFrom(ctx, ws, src, dst)
	cancel()
	if err != nil {
		refuse("application refused the connection", err)
		return
	}
	if !ws.track(up) {
		return
	}
	defer ws.untrack(up)
	rec.forwarded = true
	p.countOpened(ReporterDestination, rec.SourceWorkload, rec.DestinationWorkload)
	rec.BytesReceived, rec.BytesSent, err = splice(c.(halfConn), up)
	if err != nil {
		rec.Error = err.Error()
	}
	p.finish(rec, start)
}
