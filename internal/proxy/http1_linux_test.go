package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/proxy"
)

// http1App is an application for the HTTP/1.1 semantics tests: each path
// exercises one thing a proxy can get wrong.
func http1App(release <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "method=%s len=%d te=%q secret=%q keepalive=%q ua=%q tehdr=%q xff=%q xfh=%q",
			r.Method, len(body), r.TransferEncoding, r.Header.Get("X-Secret"), r.Header.Get("Keep-Alive"),
			r.Header.Get("User-Agent"), r.Header.Get("Te"), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"))
	})
	mux.HandleFunc("/conn", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "payload")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	})
	return mux
}

// TestLoopbackHTTP1 checks the proxy's HTTP/1.1 forwarding on an L7 port
// byte by byte: framing both ways, keep-alive, hop-by-hop headers,
// interim answers, streaming, trailers, upgrades and failures.
func TestLoopbackHTTP1(t *testing.T) {
	lb := mustLoopback(t)
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http1App(release)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	app := netip.MustParseAddrPort(l.Addr().String())
	dead := netip.AddrPortFrom(app.Addr(), freePort(t)) // nothing listens
	lb.authz.set(func(a *testAuthz) {
		a.l7[app.Port()], a.l7[dead.Port()] = true, true
		a.denyHTTP = func(r proxy.Request) (proxy.Decision, bool) {
			if r.Path == "/denied" {
				return proxy.Decision{Policy: "shop/deny"}, true
			}
			return proxy.Decision{}, false
		}
	})

	host := "Host: app.shop\r\n"

	t.Run("keep-alive reuses one application connection", func(t *testing.T) {
		c := dialWire(t, lb, app)
		var first string
		for i := range 3 {
			resp, body := c.do(t, "GET", "GET /conn HTTP/1.1\r\n"+host+"\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
			if i == 0 {
				first = body
			} else if body != first {
				t.Errorf("request %d came from %s, the first from %s", i, body, first)
			}
		}
	})

	t.Run("chunked request body", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, body := c.do(t, "POST", "POST /echo HTTP/1.1\r\n"+host+"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
		if resp.StatusCode != 200 || !strings.Contains(body, "method=POST len=11") {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})

	t.Run("HEAD then GET on one connection", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, body := c.do(t, "HEAD", "HEAD /echo HTTP/1.1\r\n"+host+"\r\n")
		if resp.StatusCode != 200 || body != "" {
			t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
		}
		resp, body = c.do(t, "GET", "GET /echo HTTP/1.1\r\n"+host+"\r\n")
		if resp.StatusCode != 200 || !strings.Contains(body, "method=GET") {
			t.Fatalf("GET after HEAD: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("hop-by-hop headers stay behind", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, body := c.do(t, "GET", "GET /echo HTTP/1.1\r\n"+host+
			"Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTe: trailers, deflate\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")
		for _, want := range []string{`secret=""`, `keepalive=""`, `ua=""`, `tehdr="trailers"`, `xff="192.0.2.1, 127.0.0.3"`, `xfh="app.shop"`} {
			if !strings.Contains(body, want) {
				t.Errorf("application saw %q, want %s", body, want)
			}
		}
		if resp.StatusCode != 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})

	t.Run("expect 100-continue", func(t *testing.T) {
		c := dialWire(t, lb, app)
		io.WriteString(c, "POST /echo HTTP/1.1\r\n"+host+"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "POST"})
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("interim answer: %v %v, want 100", resp, err)
		}
		io.WriteString(c, "data")
		resp, err = http.ReadResponse(c.br, &http.Request{Method: "POST"})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "len=4") {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})

	t.Run("streamed response arrives as it is written", func(t *testing.T) {
		c := dialWire(t, lb, app)
		io.WriteString(c, "GET /stream HTTP/1.1\r\n"+host+"\r\n")
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "first\n" {
			t.Fatalf("first part: %q %v", line, err)
		}
		close(release) // the application ends the response only now
		rest, _ := io.ReadAll(resp.Body)
		if !strings.HasSuffix(string(rest), "second\n") {
			t.Fatalf("rest %q", rest)
		}
	})

	t.Run("trailers pass", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, body := c.do(t, "GET", "GET /trailer HTTP/1.1\r\n"+host+"\r\n")
		if body != "payload" || resp.Trailer.Get("X-Checksum") != "abc123" {
			t.Fatalf("body %q trailer %v", body, resp.Trailer)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		c := dialWire(t, lb, app)
		io.WriteString(c, "GET /upgrade HTTP/1.1\r\n"+host+"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
			t.Fatalf("upgrade answer: %v %v", resp, err)
		}
		io.WriteString(c, "ping")
		got := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
			t.Fatalf("echo after upgrade: %q %v", got, err)
		}
	})

	t.Run("denied request with a body keeps the connection", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, body := c.do(t, "POST", "POST /denied HTTP/1.1\r\n"+host+"Content-Length: 5\r\n\r\nhello")
		if resp.StatusCode != 403 || body != "RBAC: access denied" {
			t.Fatalf("denied: %d %q", resp.StatusCode, body)
		}
		resp, body = c.do(t, "GET", "GET /echo HTTP/1.1\r\n"+host+"\r\n")
		if resp.StatusCode != 200 || !strings.Contains(body, "method=GET") {
			t.Fatalf("after the denial: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("connection close", func(t *testing.T) {
		for _, tc := range []struct{ name, raw string }{
			{"asked by the client", "GET /echo HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"},
			{"HTTP/1.0 client", "GET /echo HTTP/1.0\r\n" + host + "\r\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dialWire(t, lb, app)
				resp, _ := c.do(t, "GET", tc.raw)
				if resp.StatusCode != 200 || !resp.Close {
					t.Fatalf("status %d close %v, want 200 and close", resp.StatusCode, resp.Close)
				}
				if _, err := c.br.ReadByte(); err != io.EOF {
					t.Fatalf("after the response: %v, want EOF", err)
				}
			})
		}
	})

	t.Run("application closing its connection does not close the client's", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, body := c.do(t, "GET", "GET /close HTTP/1.1\r\n"+host+"\r\n")
		if resp.StatusCode != 200 || resp.Close || body != "bye" {
			t.Fatalf("status %d close %v body %q, want 200, keep-alive, bye", resp.StatusCode, resp.Close, body)
		}
		resp, _ = c.do(t, "GET", "GET /conn HTTP/1.1\r\n"+host+"\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("next request on a new application connection: %d", resp.StatusCode)
		}
	})

	t.Run("malformed request", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, _ := c.do(t, "GET", "GARBAGE\r\n\r\n")
		if resp.StatusCode != 400 || !resp.Close {
			t.Fatalf("status %d close %v, want 400 and close", resp.StatusCode, resp.Close)
		}
	})

	t.Run("oversized request head", func(t *testing.T) {
		c := dialWire(t, lb, app)
		resp, _ := c.do(t, "GET", "GET /echo HTTP/1.1\r\n"+host+"X-Big: "+strings.Repeat("a", 100<<10)+"\r\n\r\n")
		if resp.StatusCode != 431 || !resp.Close {
			t.Fatalf("status %d close %v, want 431 and close", resp.StatusCode, resp.Close)
		}
	})

	t.Run("application not listening", func(t *testing.T) {
		c := dialWire(t, lb, dead)
		resp, _ := c.do(t, "GET", "GET /echo HTTP/1.1\r\n"+host+"\r\n")
		if resp.StatusCode != 503 {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	})
}

// FuzzHTTP1 sends arbitrary bytes as a client's side of an inspected
// connection. Whatever they are, the proxy must answer and end (no hang,
// no panic), and the application must receive only requests the
// authorizer saw and allowed: no request smuggled past it by framing
// tricks (Content-Length against Transfer-Encoding, pipelining, bodies
// of denied requests), and never a path under /deny, which it denies.
func FuzzHTTP1(f *testing.F) {
	for _, s := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /deny HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 35\r\n\r\nGET /deny/smuggled HTTP/1.1\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /deny HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
		"GET http://x/deny HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET /a HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	lb := mustLoopback(f)
	var (
		mu   sync.Mutex
		seen []string
	)
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		f.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		path, _, _ := strings.Cut(r.RequestURI, "?")
		mu.Lock()
		seen = append(seen, path)
		mu.Unlock()
		io.WriteString(w, "ok")
	})}
	go srv.Serve(l)
	f.Cleanup(func() { srv.Close() })
	app := netip.MustParseAddrPort(l.Addr().String())
	lb.authz.set(func(a *testAuthz) {
		a.l7[app.Port()] = true
		a.denyHTTP = func(r proxy.Request) (proxy.Decision, bool) {
			if strings.HasPrefix(r.Path, "/deny") {
				return proxy.Decision{Policy: "shop/deny"}, true
			}
			return proxy.Decision{}, false
		}
	})

	// One connection before fuzzing mints the workloads' certificates,
	// which the test PKI does with f, not with each input's t.
	warm, err := lb.p.Dial(context.Background(), "shop", "client", app)
	if err != nil {
		f.Fatal(err)
	}
	warm.Close()

	f.Fuzz(func(t *testing.T, in []byte) {
		lb.authz.set(func(a *testAuthz) { a.requests = nil })
		mu.Lock()
		seen = nil
		mu.Unlock()
		c, err := lb.p.Dial(context.Background(), "shop", "client", app)
		if err != nil {
			t.Fatal(err)
		}
		hung := time.AfterFunc(10*time.Second, func() { c.Close() })
		c.Write(in)
		c.(interface{ CloseWrite() error }).CloseWrite()
		_, err = io.Copy(io.Discard, c)
		if !hung.Stop() {
			t.Fatalf("the proxy did not end the connection within 10 s (read: %v)", err)
		}
		c.Close()
		// The application may still be finishing a request the proxy
		// gave up on; give it a moment before comparing.
		time.Sleep(5 * time.Millisecond)
		allowed := map[string]int{}
		lb.authz.set(func(a *testAuthz) {
			for _, r := range a.requests {
				if !strings.HasPrefix(r.Path, "/deny") {
					allowed[unescaped(r.Path)]++
				}
			}
		})
		mu.Lock()
		defer mu.Unlock()
		for _, p := range seen {
			// The path is written again when forwarded, with net/url's
			// escaping (a raw '"' goes on as %22): compare meanings.
			p = unescaped(p)
			if strings.HasPrefix(p, "/deny") {
				t.Fatalf("the application received %q, which the authorizer denies (saw %q)", p, seen)
			}
			if allowed[p] == 0 {
				t.Fatalf("the application received %q, which the authorizer did not allow (allowed %v, saw %q)", p, allowed, seen)
			}
			allowed[p]--
		}
	})
}

// unescaped decodes a request path, or returns it as it is if it does not
// decode.
func unescaped(p string) string {
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}
