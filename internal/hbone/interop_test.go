package hbone_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/hbone"
)

// The tests below hold this package to net/http's HTTP/2, a complete
// implementation, in both roles (prior knowledge over plain TCP, h2c):
// what ztunnel or any other HBONE peer sends and expects is ordinary
// HTTP/2.

// h2c is the protocol set of prior-knowledge HTTP/2 only.
func h2c() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

// TestClientAgainstNetHTTPServer opens tunnels from this package's client
// to net/http's HTTP/2 server, whose handler echoes the stream.
func TestClientAgainstNetHTTPServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var authority string
	srv := &http.Server{Protocols: h2c(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Method != http.MethodConnect {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if r.Host == "10.9.9.9:1" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		authority = r.Host
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := hbone.NewClient(cc, hbone.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	s, err := c.Open(context.Background(), "[fd00::7]:9090")
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 3<<20) // beyond x/net's default windows
	rand.Read(payload)
	got, err := roundTrip(s, payload)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo through net/http's server: %d of %d bytes, equal %v, err %v", len(got), len(payload), bytes.Equal(got, payload), err)
	}
	if authority != "[fd00::7]:9090" {
		t.Errorf("net/http's server saw authority %q", authority)
	}
	_, err = c.Open(context.Background(), "10.9.9.9:1")
	if se, ok := errors.AsType[*hbone.StatusError](err); !ok || se.Status != http.StatusForbidden {
		t.Fatalf("refused Open = %v, want StatusError 403", err)
	}
}

// TestNetHTTPClientAgainstServer tunnels through this package's server
// from net/http's HTTP/2 client.
func TestNetHTTPClientAgainstServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	up := echoServer(t, 0)
	handler := spliceHandler(t, up)
	go func() {
		for {
			sc, err := l.Accept()
			if err != nil {
				return
			}
			go hbone.Serve(sc, hbone.Config{Handler: func(s *hbone.Stream) {
				if s.Authority() == "10.9.9.9:1" {
					s.Respond(http.StatusForbidden)
					return
				}
				handler(s)
			}})
		}
	}()
	tr := &http.Transport{Protocols: h2c(), DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", l.Addr().String())
	}}
	client, err := tr.NewClientConn(context.Background(), "http", "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	connect := func(authority string, body io.Reader) (*http.Response, error) {
		req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Host: authority}, Host: authority,
			Header: http.Header{}, Body: io.NopCloser(body), ContentLength: -1}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return client.RoundTrip(req.WithContext(ctx))
	}
	payload := make([]byte, 3<<20)
	rand.Read(payload)
	resp, err := connect("10.0.0.1:80", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo to net/http's client: %d of %d bytes, err %v", len(got), len(payload), err)
	}

	resp, err = connect("10.9.9.9:1", http.NoBody)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused CONNECT = %v, %v; want 403", resp, err)
	}

	// A request that is not CONNECT gets 405.
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1/", nil)
	resp, err = client.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET = %v, %v; want 405", resp, err)
	}
}
