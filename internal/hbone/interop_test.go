package hbone_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rampartsec/rampart/internal/hbone"
)

// The tests below hold this package to golang.org/x/net/http2, a complete
// HTTP/2 implementation, in both roles: what ztunnel or any other HBONE
// peer sends and expects is ordinary HTTP/2.

// TestClientAgainstXNetServer opens tunnels from this package's client to
// x/net/http2's server, whose handler echoes the stream.
func TestClientAgainstXNetServer(t *testing.T) {
	cc, sc := tcpPair(t)
	var authority string
	srv := &http2.Server{}
	go srv.ServeConn(sc, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
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
	})})
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
		t.Fatalf("echo through x/net's server: %d of %d bytes, equal %v, err %v", len(got), len(payload), bytes.Equal(got, payload), err)
	}
	if authority != "[fd00::7]:9090" {
		t.Errorf("x/net's server saw authority %q", authority)
	}
	_, err = c.Open(context.Background(), "10.9.9.9:1")
	if se, ok := errors.AsType[*hbone.StatusError](err); !ok || se.Status != http.StatusForbidden {
		t.Fatalf("refused Open = %v, want StatusError 403", err)
	}
}

// TestXNetClientAgainstServer tunnels through this package's server from
// x/net/http2's client transport.
func TestXNetClientAgainstServer(t *testing.T) {
	cc, sc := tcpPair(t)
	up := echoServer(t, 0)
	handler := spliceHandler(t, up)
	go hbone.Serve(sc, hbone.Config{Handler: func(s *hbone.Stream) {
		if s.Authority() == "10.9.9.9:1" {
			s.Respond(http.StatusForbidden)
			return
		}
		handler(s)
	}})
	tr := &http2.Transport{}
	client, err := tr.NewClientConn(cc)
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
		t.Fatalf("echo to x/net's client: %d of %d bytes, err %v", len(got), len(payload), err)
	}

	resp, err = connect("10.9.9.9:1", http.NoBody)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused CONNECT = %v, %v; want 403", resp, err)
	}

	// A request that is not CONNECT gets 405.
	req, _ := http.NewRequest(http.MethodGet, "https://10.0.0.1/", nil)
	resp, err = client.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET = %v, %v; want 405", resp, err)
	}
}
