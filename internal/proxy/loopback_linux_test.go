package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartsec/rampart/internal/proxy"
)

// loopback is a mesh of two workloads in the test's own network
// namespace (NetnsPath ""), on loopback addresses: nothing is captured,
// the client reaches the server through Proxy.Dial. It needs no
// privilege, so the tunnel, authorization and telemetry are tested on
// every Linux machine.
type loopback struct {
	p        *proxy.Proxy
	reg      *prometheus.Registry
	authz    *testAuthz
	rec      *testRecorder
	certs    *testCerts
	pki      *pki
	client   proxy.Workload
	server   proxy.Workload
	hbone    uint16
	httpAddr netip.AddrPort // application HTTP server on the server's address
	echoAddr netip.AddrPort // application echo server
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t testing.TB) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func mustLoopback(t testing.TB, configure ...func(*proxy.Config)) *loopback {
	t.Helper()
	lb := &loopback{
		reg:    prometheus.NewRegistry(),
		authz:  newTestAuthz(),
		rec:    &testRecorder{},
		pki:    mustPKI(t, "root"),
		client: proxy.Workload{Namespace: "shop", Name: "client", ServiceAccount: "client-sa", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.3")}},
		server: proxy.Workload{Namespace: "shop", Name: "server", ServiceAccount: "server-sa", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}},
		hbone:  freePort(t),
	}
	lb.certs = newTestCerts(t, lb.pki)
	res := newTestResolver()
	res.add(lb.client, true)
	res.add(lb.server, true)
	cfg := proxy.Config{
		Certificates: lb.certs, Resolver: res, Authorizer: lb.authz, Recorder: lb.rec,
		Registerer: lb.reg, TrustDomain: trustDomain, Ports: proxy.Ports{HBONE: lb.hbone},
		Logger: testLogger(t),
	}
	for _, f := range configure {
		f(&cfg)
	}
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lb.p = p
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	for _, w := range []proxy.Workload{lb.client, lb.server} {
		if err := p.AddWorkload(w); err != nil {
			t.Fatal(err)
		}
	}
	hl, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, hl)
	lb.httpAddr = netip.MustParseAddrPort(hl.Addr().String())
	el, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, el)
	lb.echoAddr = netip.MustParseAddrPort(el.Addr().String())
	return lb
}

// httpClient returns a client whose connections are the client
// workload's tunnels.
func (lb *loopback) httpClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return lb.p.Dial(ctx, lb.client.Namespace, lb.client.Name, netip.MustParseAddrPort(addr))
			},
		},
	}
}

func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestLoopbackTunnelTCP sends bytes through a tunnel both ways a
// workload's connection can enter the proxy: Dial (the proxy opens the
// connection) and Forward (the proxy serves one the workload opened, the
// outbound listener's path, spliced straight to the tunnel).
func TestLoopbackTunnelTCP(t *testing.T) {
	for _, how := range []string{"Dial", "Forward"} {
		t.Run(how, func(t *testing.T) { testLoopbackTunnelTCP(t, how) })
	}
}

func testLoopbackTunnelTCP(t *testing.T, how string) {
	lb := mustLoopback(t)
	var c net.Conn
	switch how {
	case "Dial":
		var err error
		c, err = lb.p.Dial(context.Background(), "shop", "client", lb.echoAddr)
		if err != nil {
			t.Fatal(err)
		}
	case "Forward":
		l, err := net.Listen("tcp", "127.0.0.3:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			a, err := l.Accept()
			if err != nil {
				return
			}
			defer a.Close()
			if err := lb.p.Forward("shop", "client", a, lb.echoAddr); err != nil {
				t.Errorf("Forward: %v", err)
			}
		}()
		if c, err = net.Dial("tcp", l.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	// 4 MiB one way, then a half-close: the echo must come back whole and
	// end with EOF, which only happens if both half-closes travelled.
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	go func() {
		c.Write(payload)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	c.Close()
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo: got %d bytes, want the %d sent", len(got), len(payload))
	}
	src := lb.rec.wait(t, "source side of the echo", func(r proxy.Record) bool {
		return r.Reporter == proxy.ReporterSource && r.Destination == lb.echoAddr
	})
	dst := lb.rec.wait(t, "destination side of the echo", func(r proxy.Record) bool {
		return r.Reporter == proxy.ReporterDestination && r.Destination == lb.echoAddr
	})
	for _, r := range []proxy.Record{src, dst} {
		if r.Transport != proxy.TransportHBONE || !r.Allowed || r.Error != "" {
			t.Errorf("%s record: transport %s allowed %v error %q", r.Reporter, r.Transport, r.Allowed, r.Error)
		}
		if r.SourcePrincipal != "spiffe://cluster.local/ns/shop/sa/client-sa" || r.DestinationPrincipal != "spiffe://cluster.local/ns/shop/sa/server-sa" {
			t.Errorf("%s record principals: %q -> %q", r.Reporter, r.SourcePrincipal, r.DestinationPrincipal)
		}
		if r.SourceWorkload != "shop/client" || r.DestinationWorkload != "shop/server" {
			t.Errorf("%s record workloads: %q -> %q", r.Reporter, r.SourceWorkload, r.DestinationWorkload)
		}
		if r.BytesReceived != int64(len(payload)) || r.BytesSent != int64(len(payload)) {
			t.Errorf("%s record bytes: received %d sent %d, want %d each", r.Reporter, r.BytesReceived, r.BytesSent, len(payload))
		}
	}
	if got := counterValue(t, lb.reg, "rampart_tcp_received_bytes_total", map[string]string{"reporter": "destination", "source_workload": "shop/client"}); got != float64(len(payload)) {
		t.Errorf("rampart_tcp_received_bytes_total{reporter=destination} = %v, want %d", got, len(payload))
	}
}

func TestLoopbackHTTP(t *testing.T) {
	lb := mustLoopback(t)
	c := lb.httpClient()
	base := "http://" + lb.httpAddr.String()
	status, body := get(t, c, base+"/hello")
	if status != 200 || !strings.Contains(body, "path=/hello") {
		t.Fatalf("GET /hello: %d %q", status, body)
	}
	// Not an L7 port: the application sees raw TCP, no forwarding headers.
	if !strings.Contains(body, "xfcc=;") {
		t.Errorf("TCP tunnel added headers: %q", body)
	}

	t.Run("l7 deny and allow on one connection", func(t *testing.T) {
		lb.authz.set(func(a *testAuthz) {
			a.l7[lb.httpAddr.Port()] = true
			a.denyHTTP = func(r proxy.Request) (proxy.Decision, bool) {
				switch r.Path {
				case "/admin":
					return proxy.Decision{Policy: "shop/deny-admin", Reason: "path /admin"}, true
				case "/cilium":
					return proxy.Decision{Body: "Access denied", Policy: "shop/cnp"}, true
				case "/login":
					return proxy.Decision{Status: 401, Body: "Jwt is missing", Policy: "shop/jwt"}, true
				case "/public/../docs/%7Ea":
					// Allowed as its normal form, which is what goes on.
					return proxy.Decision{Allow: true, Path: "/docs/~a"}, true
				}
				return proxy.Decision{}, false
			}
		})
		t.Cleanup(func() { lb.authz.set(func(a *testAuthz) { a.l7 = map[uint16]bool{}; a.denyHTTP = nil }) })
		c := lb.httpClient()
		for _, tc := range []struct {
			path       string
			wantStatus int
			wantBody   string
		}{
			{"/admin", 403, "RBAC: access denied"},
			{"/ok", 200, "path=/ok"},
			{"/public/../docs/%7Ea", 200, "path=/docs/~a;"},
			{"/cilium", 403, "Access denied"},
			{"/login", 401, "Jwt is missing"},
			{"/admin?x=1", 403, "RBAC: access denied"},
		} {
			status, body := get(t, c, base+tc.path)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s: %d %q, want %d %q", tc.path, status, body, tc.wantStatus, tc.wantBody)
			}
			if tc.wantStatus == 403 && body != tc.wantBody {
				t.Errorf("GET %s: body %q, want exactly %q", tc.path, body, tc.wantBody)
			}
		}
		// The allowed request reached the app with the client identity.
		_, body := get(t, c, base+"/whoami")
		if !strings.Contains(body, "xfcc=By=spiffe://cluster.local/ns/shop/sa/server-sa;URI=spiffe://cluster.local/ns/shop/sa/client-sa;") {
			t.Errorf("application saw %q, want the client's principal in X-Forwarded-Client-Cert", body)
		}
		if !strings.Contains(body, "xff=127.0.0.3") {
			t.Errorf("application saw %q, want X-Forwarded-For 127.0.0.3", body)
		}
		r := lb.rec.wait(t, "denied request record", func(r proxy.Record) bool {
			return r.Kind == proxy.RecordRequest && r.Path == "/admin" && r.Status == 403
		})
		if r.Allowed || r.Policy != "shop/deny-admin" || r.SourcePrincipal != "spiffe://cluster.local/ns/shop/sa/client-sa" || r.Method != "GET" {
			t.Errorf("denied request record: %+v", r)
		}
		if got := counterValue(t, lb.reg, "rampart_requests_total", map[string]string{"response_code": "403"}); got != 3 {
			t.Errorf("rampart_requests_total{response_code=403} = %v, want 3", got)
		}
		// The requests of one client shared one TCP connection and thus
		// one AuthorizeConn; each had its own AuthorizeHTTP.
		lb.authz.mu.Lock()
		nreq := len(lb.authz.requests)
		lb.authz.mu.Unlock()
		if nreq != 7 {
			t.Errorf("AuthorizeHTTP called %d times, want 7", nreq)
		}
	})

	t.Run("connection deny", func(t *testing.T) {
		lb.authz.set(func(a *testAuthz) { a.connDeny["spiffe://cluster.local/ns/shop/sa/client-sa"] = true })
		t.Cleanup(func() { lb.authz.set(func(a *testAuthz) { a.connDeny = map[string]bool{} }) })
		_, err := lb.p.Dial(context.Background(), "shop", "client", lb.httpAddr)
		var se *proxy.StatusError
		if !errors.As(err, &se) || se.Status != 403 {
			t.Fatalf("Dial with a denied principal: %v, want StatusError 403", err)
		}
		lb.rec.wait(t, "denied connection", func(r proxy.Record) bool {
			return r.Reporter == proxy.ReporterDestination && !r.Allowed && r.Policy == "test/deny-conn" && r.Status == 403
		})
	})

	for _, tc := range []struct {
		name string
		set  func(a *testAuthz)
	}{
		{"authorizer error", func(a *testAuthz) { a.connErr = errors.New("policy store unavailable") }},
		{"authorizer panic", func(a *testAuthz) { a.connPanic = true }},
	} {
		t.Run(tc.name+" fails closed", func(t *testing.T) {
			lb.authz.set(tc.set)
			t.Cleanup(func() { lb.authz.set(func(a *testAuthz) { a.connErr, a.connPanic = nil, false }) })
			_, err := lb.p.Dial(context.Background(), "shop", "client", lb.httpAddr)
			var se *proxy.StatusError
			if !errors.As(err, &se) || se.Status != 403 {
				t.Fatalf("Dial: %v, want StatusError 403", err)
			}
		})
	}
}

// counterValue sums the counters called name whose labels include want.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestLoopbackRefusesBadPeers(t *testing.T) {
	lb := mustLoopback(t)
	addr := netip.AddrPortFrom(lb.server.IPs[0], lb.hbone).String()
	good := &tls.Config{
		Certificates:       []tls.Certificate{lb.certs.leafFor(lb.client)},
		InsecureSkipVerify: true, // these tests are about what the server accepts
	}
	other := mustPKI(t, "another root")
	for _, tc := range []struct {
		name       string
		cfg        *tls.Config
		method     string
		authority  string
		wantStatus int    // 0: the handshake or request must fail
		wantReason string // in the destination's record
	}{
		{name: "certificate of another root", cfg: &tls.Config{Certificates: []tls.Certificate{other.leaf(t, "spiffe://cluster.local/ns/shop/sa/client-sa")}, InsecureSkipVerify: true},
			authority: lb.httpAddr.String(), wantReason: "tls handshake failed"},
		{name: "no client certificate", cfg: &tls.Config{InsecureSkipVerify: true},
			authority: lb.httpAddr.String(), wantReason: "tls handshake failed"},
		{name: "certificate without SPIFFE ID", cfg: &tls.Config{Certificates: []tls.Certificate{lb.pki.leaf(t, "https://example.com/x")}, InsecureSkipVerify: true},
			authority: lb.httpAddr.String(), wantReason: "tls handshake failed"},
		{name: "not CONNECT", cfg: good, method: http.MethodGet, authority: lb.httpAddr.String(), wantStatus: 405},
		{name: "authority of another workload", cfg: good, authority: "127.0.0.3:80", wantStatus: 400},
		{name: "authority on the proxy's port", cfg: good, authority: netip.AddrPortFrom(lb.server.IPs[0], lb.hbone).String(), wantStatus: 400},
		{name: "authority not canonical", cfg: good, authority: "127.0.0.2:0" + strconv.Itoa(int(lb.httpAddr.Port())), wantStatus: 400},
		{name: "host name authority", cfg: good, authority: "server.shop:80", wantStatus: 400},
		{name: "application port closed", cfg: good, authority: "127.0.0.2:1", wantStatus: 503},
		{name: "good", cfg: good, authority: lb.httpAddr.String(), wantStatus: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb.rec.reset()
			method := tc.method
			if method == "" {
				method = http.MethodConnect
			}
			status, err := hboneConnect(addr, tc.cfg, method, tc.authority)
			if tc.wantStatus == 0 {
				if err == nil {
					t.Fatalf("got status %d, want the handshake refused", status)
				}
				r := lb.rec.wait(t, "refused handshake", func(r proxy.Record) bool { return r.Reporter == proxy.ReporterDestination })
				if r.Allowed || !strings.Contains(r.Reason, tc.wantReason) {
					t.Errorf("record: allowed %v reason %q, want %q", r.Allowed, r.Reason, tc.wantReason)
				}
				return
			}
			if err != nil || status != tc.wantStatus {
				t.Fatalf("got %d, %v; want %d", status, err, tc.wantStatus)
			}
		})
	}
	if got := counterValue(t, lb.reg, "rampart_tls_handshake_failures_total", nil); got != 3 {
		t.Errorf("rampart_tls_handshake_failures_total = %v, want 3", got)
	}
}

func TestLoopbackServerIdentityChecked(t *testing.T) {
	lb := mustLoopback(t)
	// The resolver says 127.0.0.2 is another service account than the
	// server's certificate: the client's verification must refuse.
	res := newTestResolver()
	impostor := lb.server
	impostor.ServiceAccount = "payments-sa"
	res.add(lb.client, true)
	res.add(impostor, true)
	p, err := proxy.New(proxy.Config{Certificates: lb.certs, Resolver: res, Authorizer: lb.authz, Recorder: lb.rec,
		TrustDomain: trustDomain, Ports: proxy.Ports{HBONE: lb.hbone}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client2 := lb.client
	client2.Name, client2.IPs = "client2", []netip.Addr{netip.MustParseAddr("127.0.0.4")}
	if err := p.AddWorkload(client2); err != nil {
		t.Fatal(err)
	}
	_, err = p.Dial(context.Background(), "shop", "client2", lb.httpAddr)
	if err == nil || !strings.Contains(err.Error(), "want spiffe://cluster.local/ns/shop/sa/payments-sa") {
		t.Fatalf("Dial to a server with the wrong identity: %v", err)
	}
}

// TestLoopbackNoGoroutineLeak: after traffic of every kind, including a
// connection the client never closes, Close leaves no goroutine of the
// proxy or of its HTTP/2 connections behind.
func TestLoopbackNoGoroutineLeak(t *testing.T) {
	lb := mustLoopback(t)
	var done sync.WaitGroup
	for range 5 {
		done.Add(1)
		go func() {
			defer done.Done()
			c, err := lb.p.Dial(context.Background(), "shop", "client", lb.echoAddr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Write([]byte("ping"))
			c.(interface{ CloseWrite() error }).CloseWrite()
			io.ReadAll(c)
		}()
	}
	done.Wait()
	lb.authz.set(func(a *testAuthz) { a.l7[lb.httpAddr.Port()] = true })
	c := lb.httpClient()
	for range 3 {
		get(t, c, "http://"+lb.httpAddr.String()+"/x")
	}
	lb.authz.set(func(a *testAuthz) { a.connDeny["spiffe://cluster.local/ns/shop/sa/client-sa"] = true })
	lb.p.Dial(context.Background(), "shop", "client", lb.echoAddr)
	lb.authz.set(func(a *testAuthz) { a.connDeny = map[string]bool{} })
	abandoned, err := lb.p.Dial(context.Background(), "shop", "client", lb.echoAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer abandoned.Close()
	abandoned.Write([]byte("never closed"))

	if err := lb.p.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := leftoverGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leftoverGoroutines returns the stacks of goroutines running code of the
// proxy package, of its tunnels (hbone) or of x/net/http2 (which only the
// proxy's L7 side uses here).
func leftoverGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "internal/proxy.") || strings.Contains(g, "internal/hbone.") || strings.Contains(g, "golang.org/x/net/http2.") {
			if !strings.Contains(g, "leftoverGoroutines") {
				out = append(out, g)
			}
		}
	}
	return out
}

// TestLoopbackL7HTTP2: on an L7 port, prior-knowledge HTTP/2 (how gRPC
// clients talk) is authorized per request and forwarded as HTTP/2, with
// trailers.
func TestLoopbackL7HTTP2(t *testing.T) {
	lb := mustLoopback(t)
	lb.authz.set(func(a *testAuthz) {
		a.l7[lb.httpAddr.Port()] = true
		a.denyHTTP = func(r proxy.Request) (proxy.Decision, bool) {
			return proxy.Decision{Policy: "shop/deny-admin"}, r.Path == "/shop.Admin/Delete"
		}
	})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols: &protos,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return lb.p.Dial(ctx, "shop", "client", netip.MustParseAddrPort(addr))
		},
	}}
	post := func(path string) (*http.Response, string) {
		resp, err := c.Post("http://"+lb.httpAddr.String()+path, "application/grpc", strings.NewReader("request-bytes"))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := post("/shop.Catalog/List")
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(body, "body=request-bytes") {
		t.Fatalf("allowed h2c call: %s %s %q", resp.Proto, resp.Status, body)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Errorf("trailer Grpc-Status = %q, want 0 (trailers must pass)", resp.Trailer.Get("Grpc-Status"))
	}
	resp, body = post("/shop.Admin/Delete")
	if resp.StatusCode != 403 || body != "RBAC: access denied" {
		t.Fatalf("denied h2c call: %s %q", resp.Status, body)
	}
	// The application gets the path the authorizer saw, byte for byte:
	// net/url would re-escape one with a byte it escapes itself ("|")
	// from its decoded form, turning the "%2F" inside a segment into a
	// separator, and "/a|/..%2Fadmin" into "/admin" at an application
	// that resolves dot segments. Without escapes to lose, the
	// re-escaped spelling is the same path and goes on.
	for _, tc := range []struct{ path, uri string }{
		{"/a%7C/..%2Fadmin", "/a%7C/..%2Fadmin"},
		{"/a|/..%2Fadmin", ""}, // refused: 400
		{"/a|b", "/a%7Cb"},
	} {
		req, err := http.NewRequest("GET", "http://"+lb.httpAddr.String()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = "//" + lb.httpAddr.String() + tc.path // sent as :path unchanged
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf(":path %q: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.uri == "" {
			if resp.StatusCode != 400 {
				t.Errorf(":path %q: %s %q, want 400", tc.path, resp.Status, b)
			}
		} else if resp.StatusCode != 200 || !strings.Contains(string(b), "uri="+tc.uri+";") {
			t.Errorf(":path %q: %s %q, want the application to get %s", tc.path, resp.Status, b, tc.uri)
		}
	}
	r := lb.rec.wait(t, "h2c request record", func(r proxy.Record) bool {
		return r.Kind == proxy.RecordRequest && r.Path == "/shop.Catalog/List"
	})
	if r.Method != "POST" || r.Status != 200 || r.BytesReceived != int64(len("request-bytes")) {
		t.Errorf("record: %+v", r)
	}
}

// panicResolver fails the way a buggy mesh view might.
type panicResolver struct{}

func (panicResolver) Resolve(netip.Addr) (proxy.Workload, bool) { panic("resolver bug") }

// TestLoopbackResolverPanicRefuses: a resolver that panics must not be
// read as "outside the mesh", which would send the bytes in the clear.
func TestLoopbackResolverPanicRefuses(t *testing.T) {
	lb := mustLoopback(t)
	p, err := proxy.New(proxy.Config{Certificates: lb.certs, Resolver: panicResolver{}, Authorizer: lb.authz,
		TrustDomain: trustDomain, Ports: proxy.Ports{HBONE: freePort(t)}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := lb.client
	w.Name, w.IPs = "client3", []netip.Addr{netip.MustParseAddr("127.0.0.5")}
	if err := p.AddWorkload(w); err != nil {
		t.Fatal(err)
	}
	if c, err := p.Dial(context.Background(), "shop", "client3", lb.httpAddr); err == nil {
		c.Close()
		t.Fatal("Dial with a panicking resolver connected")
	}
}
