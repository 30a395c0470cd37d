package proxy_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
)

// appHandler is the test application: it answers with what it saw, so
// tests can check what reached it (path, peer address, forwarding
// headers) and echoes the request body.
func appHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.ProtoMajor == 2 {
		// As a gRPC server does: the status comes in a trailer.
		w.Header().Set("Trailer", "Grpc-Status")
		defer w.Header().Set("Grpc-Status", "0")
	}
	fmt.Fprintf(w, "hello from app; path=%s; remote=%s; xfcc=%s; xff=%s; uri=%s; body=%s",
		r.URL.Path, r.RemoteAddr, r.Header.Get("X-Forwarded-Client-Cert"), r.Header.Get("X-Forwarded-For"), r.RequestURI, body)
}

// serveHTTP serves appHandler on l until the test ends.
func serveHTTP(t testing.TB, l net.Listener) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true) // prior-knowledge h2c, as gRPC
	srv := &http.Server{Handler: http.HandlerFunc(appHandler), Protocols: &protos}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// serveEcho echoes every connection on l until its client half-closes,
// then half-closes too: a check that half-close travels both ways.
func serveEcho(t testing.TB, l net.Listener) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
}

// hboneConnect speaks HBONE by hand to addr: TLS with cfg, HTTP/2, one
// request with method and authority. It returns the status, or the error
// of the handshake or request.
func hboneConnect(addr string, cfg *tls.Config, method, authority string) (int, error) {
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer raw.Close()
	return hboneOn(raw, cfg, authority, method)
}

// hboneOn speaks HBONE on an open TCP connection: CONNECT by default.
func hboneOn(raw net.Conn, cfg *tls.Config, authority string, method ...string) (int, error) {
	m := http.MethodConnect
	if len(method) > 0 {
		m = method[0]
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	cfg.MinVersion = tls.VersionTLS13
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	// net/http's HTTP/2 client, on the connection handshaken above.
	var h2 http.Protocols
	h2.SetHTTP2(true)
	tr := &http.Transport{Protocols: &h2, DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	cc, err := tr.NewClientConn(context.Background(), "https", authority)
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	req := &http.Request{Method: m, URL: &url.URL{Scheme: "https", Host: authority, Path: "/"}, Host: authority,
		Header: http.Header{}, Body: pr, ContentLength: -1}
	if m == http.MethodConnect {
		req.URL = &url.URL{Host: authority}
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
