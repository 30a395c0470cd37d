package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/proxy"
)

// wireApp is an HTTP/1.1 application that records every byte the proxy
// sends it and answers each request with answer's raw bytes; an empty
// answer closes the connection instead, after the request was read (an
// application that crashed while handling it).
type wireApp struct {
	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []string // "METHOD target", in the order they arrived
}

func (a *wireApp) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw.Write(b)
}

// received returns what the application has received so far.
func (a *wireApp) received() (raw string, reqs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw.String(), append([]string(nil), a.reqs...)
}

func startWireApp(t *testing.T, answer func(n int, r *http.Request) string) (*wireApp, netip.AddrPort) {
	t.Helper()
	a := &wireApp{}
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(io.TeeReader(c, a))
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					a.mu.Lock()
					a.reqs = append(a.reqs, req.Method+" "+req.RequestURI)
					a.mu.Unlock()
					out := answer(n, req)
					if out == "" {
						return
					}
					io.WriteString(c, out)
				}
			}()
		}
	}()
	return a, netip.MustParseAddrPort(l.Addr().String())
}

func answerOK(int, *http.Request) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
}

// wireClient is a client's end of an inspected connection through the
// loopback proxy.
type wireClient struct {
	net.Conn
	br *bufio.Reader
}

func dialWire(t *testing.T, lb *loopback, dst netip.AddrPort) *wireClient {
	t.Helper()
	lb.authz.set(func(a *testAuthz) { a.l7[dst.Port()] = true })
	c, err := lb.p.Dial(context.Background(), "shop", "client", dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wireClient{Conn: c, br: bufio.NewReader(c)}
}

// do writes raw and reads one response to a request with method.
func (c *wireClient) do(t *testing.T, method, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// ended reports whether the proxy ends the connection within d.
func (c *wireClient) ended(d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestLoopbackHTTP1Wire checks what the application and the client get
// byte for byte where a proxy's own framing and header handling decide:
// the request's framing is the proxy's alone, nothing unauthorized rides
// along (trailers, h2c upgrades), responses without a body keep their
// meaning, HTTP/1.0 keep-alive is announced, and only requests that are
// safe to repeat are sent twice.
func TestLoopbackHTTP1Wire(t *testing.T) {
	lb := mustLoopback(t)
	const host = "Host: app.shop\r\n"

	t.Run("one Content-Length, the proxy's", func(t *testing.T) {
		app, dst := startWireApp(t, answerOK)
		c := dialWire(t, lb, dst)
		for _, raw := range []string{
			"POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello",
			"POST /b HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
			"POST /c HTTP/1.1\r\n" + host + "Content-Length: 005\r\n\r\nhello",
		} {
			if resp, _ := c.do(t, "POST", raw); resp.StatusCode != 200 {
				t.Fatalf("%q: %d", raw, resp.StatusCode)
			}
		}
		raw, _ := app.received()
		want := []string{"Content-Length: 5\r\n", "Content-Length: 0\r\n", "Content-Length: 5\r\n"}
		if got := strings.Count(raw, "Content-Length"); got != len(want) {
			t.Errorf("%d Content-Length lines for %d requests:\n%s", got, len(want), raw)
		}
		for _, w := range want {
			if !strings.Contains(raw, w) {
				t.Errorf("application did not get %q:\n%s", w, raw)
			}
		}
	})

	t.Run("request trailers stay behind", func(t *testing.T) {
		app, dst := startWireApp(t, answerOK)
		c := dialWire(t, lb, dst)
		resp, _ := c.do(t, "POST", "POST /a HTTP/1.1\r\n"+host+"Transfer-Encoding: chunked\r\nTrailer: X-Forwarded-Client-Cert\r\n\r\n"+
			"5\r\nhello\r\n0\r\n"+
			"X-Forwarded-Client-Cert: By=spiffe://cluster.local/ns/shop/sa/server-sa;URI=spiffe://cluster.local/ns/kube-system/sa/admin\r\n"+
			"Host: evil\r\n\r\n")
		raw, _ := app.received()
		if resp.StatusCode != 200 || !strings.HasSuffix(raw, "5\r\nhello\r\n0\r\n\r\n") {
			t.Fatalf("%d; application received:\n%s", resp.StatusCode, raw)
		}
		if strings.Contains(raw, "kube-system") || strings.Contains(raw, "evil") {
			t.Errorf("a trailer reached the application:\n%s", raw)
		}
	})

	t.Run("h2c upgrade is not forwarded", func(t *testing.T) {
		app, dst := startWireApp(t, answerOK)
		c := dialWire(t, lb, dst)
		resp, _ := c.do(t, "GET", "GET /a HTTP/1.1\r\n"+host+"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
		raw, _ := app.received()
		if resp.StatusCode != 200 {
			t.Fatalf("%d", resp.StatusCode)
		}
		for _, h := range []string{"Upgrade", "Http2-Settings", "HTTP2-Settings"} {
			if strings.Contains(raw, h+":") {
				t.Errorf("application got %s:\n%s", h, raw)
			}
		}
	})

	t.Run("a method starting like the HTTP/2 preface is HTTP/1.1", func(t *testing.T) {
		app, dst := startWireApp(t, answerOK)
		c := dialWire(t, lb, dst)
		if resp, body := c.do(t, "PRIX", "PRIX /a HTTP/1.1\r\n"+host+"\r\n"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if _, reqs := app.received(); len(reqs) != 1 || reqs[0] != "PRIX /a" {
			t.Errorf("application got %q, want [PRIX /a]", reqs)
		}
	})

	t.Run("responses without a body", func(t *testing.T) {
		_, dst := startWireApp(t, func(_ int, r *http.Request) string {
			switch r.URL.Path {
			case "/204":
				return "HTTP/1.1 204 No Content\r\n\r\n"
			case "/304":
				return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"
			}
			return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n" // HEAD: the GET's length
		})
		c := dialWire(t, lb, dst)
		for _, tc := range []struct{ method, path, length string }{
			{"GET", "/204", ""},
			{"GET", "/304", ""},
			{"HEAD", "/doc", "1234"},
		} {
			resp, body := c.do(t, tc.method, tc.method+" "+tc.path+" HTTP/1.1\r\n"+host+"\r\n")
			if got := strings.Join(resp.Header["Content-Length"], ","); got != tc.length || body != "" {
				t.Errorf("%s %s: %d, Content-Length %q, body %q; want Content-Length %q and no body",
					tc.method, tc.path, resp.StatusCode, got, body, tc.length)
			}
		}
		// Framing held: the connection still serves.
		if resp, _ := c.do(t, "GET", "GET /204 HTTP/1.1\r\n"+host+"\r\n"); resp.StatusCode != 204 {
			t.Errorf("after them: %d", resp.StatusCode)
		}
	})

	t.Run("HTTP/1.0 keep-alive is announced", func(t *testing.T) {
		_, dst := startWireApp(t, answerOK)
		c := dialWire(t, lb, dst)
		for i := range 2 {
			resp, body := c.do(t, "GET", "GET /a HTTP/1.0\r\n"+host+"Connection: keep-alive\r\n\r\n")
			// A 1.0 client keeps the connection only when told so.
			if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("request %d: %d %q, Connection %q", i, resp.StatusCode, body, resp.Header.Get("Connection"))
			}
		}
	})

	t.Run("only replayable requests are sent again", func(t *testing.T) {
		// The application reads the second request of each connection and
		// closes without answering, as one that crashed on it.
		app, dst := startWireApp(t, func(n int, r *http.Request) string {
			if n == 1 {
				return ""
			}
			return answerOK(n, r)
		})
		for _, tc := range []struct {
			method  string
			retried bool
		}{
			{"GET", true},     // the retry is the new connection's first: answered
			{"DELETE", false}, // once, and the client learns it failed
			{"POST", false},
		} {
			c := dialWire(t, lb, dst)
			c.do(t, "GET", "GET /warm HTTP/1.1\r\n"+host+"\r\n")
			_, before := app.received()
			resp, _ := c.do(t, tc.method, tc.method+" /x HTTP/1.1\r\n"+host+"Content-Length: 0\r\n\r\n")
			_, after := app.received()
			seen := 0
			for _, r := range after[len(before):] {
				if r == tc.method+" /x" {
					seen++
				}
			}
			if want := map[bool]int{true: 2, false: 1}[tc.retried]; seen != want {
				t.Errorf("%s: the application got it %d times, want %d", tc.method, seen, want)
			}
			if wantStatus := map[bool]int{true: 200, false: 502}[tc.retried]; resp.StatusCode != wantStatus {
				t.Errorf("%s: client got %d, want %d", tc.method, resp.StatusCode, wantStatus)
			}
		}
	})
}

// TestLoopbackHTTP1StreamedBody checks that a request body the client
// streams is forwarded while the response is read: an application that
// answers each piece as it reads it (an echo, a chat) must see the
// client's next piece only after the client got the answer to the last,
// which deadlocks a proxy that sends the whole body first.
func TestLoopbackHTTP1StreamedBody(t *testing.T) {
	lb := mustLoopback(t)
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(w, "echo "+line)
			rc.Flush()
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := dialWire(t, lb, netip.MustParseAddrPort(l.Addr().String()))

	io.WriteString(c, "POST /chat HTTP/1.1\r\nHost: app.shop\r\nTransfer-Encoding: chunked\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp *http.Response
	var body *bufio.Reader
	for i := range 3 {
		msg := fmt.Sprintf("message %d\n", i)
		fmt.Fprintf(c, "%x\r\n%s\r\n", len(msg), msg)
		if resp == nil {
			resp, err = http.ReadResponse(c.br, &http.Request{Method: "POST"})
			if err != nil {
				t.Fatalf("response: %v", err)
			}
			body = bufio.NewReader(resp.Body)
		}
		got, err := body.ReadString('\n')
		if err != nil || got != "echo "+msg {
			t.Fatalf("answer to piece %d: %q, %v", i, got, err)
		}
	}
	io.WriteString(c, "0\r\n\r\n")
	if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
		t.Fatalf("end of the response: %q, %v", rest, err)
	}
	// The exchange ended cleanly: the connection serves another request.
	if resp, _ := c.do(t, "GET", "GET /chat HTTP/1.1\r\nHost: app.shop\r\n\r\n"); resp.StatusCode != 200 {
		t.Errorf("next request: %d", resp.StatusCode)
	}
}

// TestLoopbackHTTP1StalledBody checks that a request whose body stops
// coming does not hold the proxy and the application connection forever:
// with no progress for the idle timeout, both are closed. Small bodies
// are written before the response is read, large ones beside it.
func TestLoopbackHTTP1StalledBody(t *testing.T) {
	const idle = 300 * time.Millisecond
	lb := mustLoopback(t, func(c *proxy.Config) { c.IdleTimeout = idle })
	for _, tc := range []struct {
		name   string
		length int
		sent   int
	}{
		{"small body", 100, 1},
		{"large body", 100000, 70000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.2:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			appClosed := make(chan struct{})
			go func() {
				a, err := l.Accept()
				if err != nil {
					return
				}
				defer a.Close()
				io.Copy(io.Discard, a) // returns when the proxy closes its side
				close(appClosed)
			}()
			c := dialWire(t, lb, netip.MustParseAddrPort(l.Addr().String()))
			fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: app.shop\r\nContent-Length: %d\r\n\r\n%s", tc.length, strings.Repeat("x", tc.sent))
			if !c.ended(10 * idle) {
				t.Fatal("client connection still open long after the body stopped")
			}
			select {
			case <-appClosed:
			case <-time.After(10 * idle):
				t.Fatal("application connection still open long after the body stopped")
			}
		})
	}
}

// TestLoopbackHTTP1UpgradeOutlivesIdleTimeout checks that the idle
// timeout of a forwarded request does not end a WebSocket connection
// once switched: it is a byte tunnel then, idle as long as its peers
// like.
func TestLoopbackHTTP1UpgradeOutlivesIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	lb := mustLoopback(t, func(c *proxy.Config) { c.IdleTimeout = idle })
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http1App(nil)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := dialWire(t, lb, netip.MustParseAddrPort(l.Addr().String()))
	io.WriteString(c, "GET /upgrade HTTP/1.1\r\nHost: app.shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	time.Sleep(3 * idle)
	io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo after %v idle: %q %v", 3*idle, got, err)
	}
}
