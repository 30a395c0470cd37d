package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/testenv"
)

// mesh is the end-to-end setup: three pods on a bridge. client and server
// are mesh workloads served by one proxy (as on one node); other is not in
// the mesh. server runs an HTTP application on 8080 and an echo server on
// 9000, other an HTTP application on 8080. None of them knows about the
// proxy.
type mesh struct {
	p                     *proxy.Proxy
	reg                   *prometheus.Registry
	authz                 *testAuthz
	rec                   *testRecorder
	res                   *testResolver
	pki                   *pki
	certs                 *testCerts
	client, server, other *member
}

const (
	clientPrincipal = "spiffe://cluster.local/ns/test/sa/client-sa"
	serverPrincipal = "spiffe://cluster.local/ns/test/sa/server-sa"
)

func mustMesh(t *testing.T) *mesh {
	t.Helper()
	pods := mustTopology(t, "client", "server", "other")
	m := &mesh{
		reg: prometheus.NewRegistry(), authz: newTestAuthz(), rec: &testRecorder{}, res: newTestResolver(),
		pki: mustPKI(t, "root"), client: pods["client"], server: pods["server"], other: pods["other"],
	}
	m.certs = newTestCerts(t, m.pki)
	m.res.add(m.client.workload(), true)
	m.res.add(m.server.workload(), true)
	m.res.add(m.other.workload(), false)
	serveHTTP(t, m.server.listen(t, ":8080"))
	serveEcho(t, m.server.listen(t, ":9000"))
	serveHTTP(t, m.other.listen(t, ":8080"))
	p, err := proxy.New(proxy.Config{Certificates: m.certs, Resolver: m.res, Authorizer: m.authz, Recorder: m.rec,
		Registerer: m.reg, TrustDomain: trustDomain, Logger: testLogger(t), HandshakeTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m.p = p
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
		for _, pod := range []*member{m.client, m.server} {
			if hasProxyTable(t, pod) {
				t.Errorf("%s: nftables table %s left after Close", pod.role, proxy.NFTableName)
			}
		}
	})
	for _, pod := range []*member{m.client, m.server} {
		if err := p.AddWorkload(pod.workload()); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func hostPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

// TestMeshHTTP: a plain http.Get from the client pod to the server pod
// goes through the tunnel, over IPv4 and IPv6, and both sides record it
// with the client's verified principal.
func TestMeshHTTP(t *testing.T) {
	m := mustMesh(t)
	for _, fam := range []struct {
		name string
		ip   netip.Addr
	}{{"ipv4", m.server.ip4}, {"ipv6", m.server.ip6}} {
		t.Run(fam.name, func(t *testing.T) {
			m.rec.reset()
			url := "http://" + hostPort(fam.ip, 8080) + "/hello"
			status, body := get(t, m.client.httpClient(), url)
			if status != 200 || !strings.Contains(body, "path=/hello") {
				t.Fatalf("GET %s: %d %q", url, status, body)
			}
			// The application sees the client as its peer, as without
			// the mesh: the proxy connected from the client's address.
			client := map[bool]netip.Addr{true: m.client.ip4, false: m.client.ip6}[fam.ip.Is4()]
			if !strings.Contains(body, "remote="+net.JoinHostPort(client.String(), "")) {
				t.Errorf("GET %s: the application's peer is not the client (%s): %q", url, client, body)
			}
			dst := netip.AddrPortFrom(fam.ip, 8080)
			src := m.rec.wait(t, "outbound record", func(r proxy.Record) bool {
				return r.Reporter == proxy.ReporterSource && r.Destination == dst
			})
			in := m.rec.wait(t, "inbound record", func(r proxy.Record) bool {
				return r.Reporter == proxy.ReporterDestination && r.Destination == dst
			})
			for _, r := range []proxy.Record{src, in} {
				if r.Transport != proxy.TransportHBONE || !r.Allowed || r.Error != "" {
					t.Errorf("%s: transport %s allowed %v error %q", r.Reporter, r.Transport, r.Allowed, r.Error)
				}
				if r.SourcePrincipal != clientPrincipal || r.DestinationPrincipal != serverPrincipal {
					t.Errorf("%s: principals %q -> %q", r.Reporter, r.SourcePrincipal, r.DestinationPrincipal)
				}
				if r.SourceWorkload != "test/client" || r.DestinationWorkload != "test/server" {
					t.Errorf("%s: workloads %q -> %q", r.Reporter, r.SourceWorkload, r.DestinationWorkload)
				}
				if r.BytesReceived == 0 || r.BytesSent == 0 {
					t.Errorf("%s: bytes received %d sent %d", r.Reporter, r.BytesReceived, r.BytesSent)
				}
			}
			// The tunnel left from the client's own address of the family.
			if in.Source.Addr() != map[bool]netip.Addr{true: m.client.ip4, false: m.client.ip6}[fam.ip.Is4()] {
				t.Errorf("inbound source %v, want the client's address", in.Source)
			}
		})
	}

	t.Run("echo with half-close", func(t *testing.T) {
		c, err := m.client.dialer()(context.Background(), "tcp", hostPort(m.server.ip6, 9000))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		payload := make([]byte, 1<<20)
		rand.Read(payload)
		go func() {
			c.Write(payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("echo: %d bytes, %v; want the %d sent and EOF", len(got), err, len(payload))
		}
	})

	t.Run("outside the mesh passes through", func(t *testing.T) {
		m.rec.reset()
		status, body := get(t, m.client.httpClient(), "http://"+hostPort(m.other.ip4, 8080)+"/plain")
		if status != 200 || !strings.Contains(body, "remote="+m.client.ip4.String()+":") {
			t.Fatalf("GET other: %d %q", status, body)
		}
		// The previous subtest's tunnel may report after the reset: wait
		// for this connection's record, to the other workload.
		r := m.rec.wait(t, "passthrough record", func(r proxy.Record) bool {
			return r.Reporter == proxy.ReporterSource && r.Destination.Addr() == m.other.ip4
		})
		if r.Transport != proxy.TransportPassthrough || r.DestinationWorkload != "test/other" || r.SourcePrincipal != "" {
			t.Errorf("passthrough record: %+v", r)
		}
	})

	t.Run("the proxy's own port is not a destination", func(t *testing.T) {
		c, err := m.client.dialer()(context.Background(), "tcp", "127.0.0.1:15001")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("a connection to the outbound listener itself was served (%d bytes)", n)
		}
	})

	if got := counterValue(t, m.reg, "rampart_tcp_connections_opened_total", map[string]string{"reporter": "destination", "destination_workload": "test/server"}); got < 3 {
		t.Errorf("rampart_tcp_connections_opened_total{reporter=destination} = %v, want at least 3", got)
	}
}

// TestMeshAuthorization: a denied principal gets Istio's 403 on an L7 port
// and a closed connection on a TCP port.
func TestMeshAuthorization(t *testing.T) {
	m := mustMesh(t)
	url := "http://" + hostPort(m.server.ip4, 8080)
	m.authz.set(func(a *testAuthz) {
		a.l7[8080] = true
		a.denyHTTP = func(r proxy.Request) (proxy.Decision, bool) {
			if r.SourcePrincipal == clientPrincipal && strings.HasPrefix(r.Path, "/admin") {
				return proxy.Decision{Policy: "test/deny-client-admin", Reason: "principal client-sa may not use /admin"}, true
			}
			return proxy.Decision{}, false
		}
	})
	status, body := get(t, m.client.httpClient(), url+"/admin/users")
	if status != 403 || body != "RBAC: access denied" {
		t.Fatalf("denied request: %d %q, want 403 %q", status, body, "RBAC: access denied")
	}
	status, body = get(t, m.client.httpClient(), url+"/public")
	if status != 200 || !strings.Contains(body, "xfcc=By="+serverPrincipal+";URI="+clientPrincipal) ||
		!strings.Contains(body, "remote="+m.client.ip4.String()+":") {
		t.Fatalf("allowed request: %d %q, want the client's XFCC and address", status, body)
	}
	r := m.rec.wait(t, "denied request", func(r proxy.Record) bool { return r.Kind == proxy.RecordRequest && r.Status == 403 })
	if r.Policy != "test/deny-client-admin" || r.SourcePrincipal != clientPrincipal || r.Path != "/admin/users" || r.DestinationWorkload != "test/server" {
		t.Errorf("request record: %+v", r)
	}

	m.authz.set(func(a *testAuthz) { a.l7 = map[uint16]bool{}; a.connDeny[clientPrincipal] = true })
	resp, err := m.client.httpClient().Get(url + "/public")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("TCP-level deny: got %s, want the connection closed", resp.Status)
	}
	m.rec.wait(t, "denied connection", func(r proxy.Record) bool {
		return r.Reporter == proxy.ReporterDestination && !r.Allowed && r.Policy == "test/deny-conn" && r.SourcePrincipal == clientPrincipal
	})
	m.rec.wait(t, "refused tunnel on the source side", func(r proxy.Record) bool {
		return r.Reporter == proxy.ReporterSource && !r.Allowed && r.Status == 403
	})
}

// TestPeerAuthentication: plaintext from a pod outside the mesh is closed
// under STRICT and admitted, without a principal, under PERMISSIVE.
func TestPeerAuthentication(t *testing.T) {
	m := mustMesh(t)
	url := "http://" + hostPort(m.server.ip4, 8080) + "/from-other"
	resp, err := m.other.httpClient().Get(url)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("STRICT: plaintext got %s, want the connection closed", resp.Status)
	}
	r := m.rec.wait(t, "strict refusal", func(r proxy.Record) bool { return r.Transport == proxy.TransportPlaintext })
	if r.Allowed || !strings.Contains(r.Reason, "STRICT") || r.SourceWorkload != "test/other" {
		t.Errorf("STRICT record: %+v", r)
	}

	m.authz.set(func(a *testAuthz) { a.peer[8080] = proxy.PeerPermissive })
	m.rec.reset()
	status, body := get(t, m.other.httpClient(), url)
	if status != 200 || !strings.Contains(body, "path=/from-other") || !strings.Contains(body, "remote="+m.other.ip4.String()+":") {
		t.Fatalf("PERMISSIVE: %d %q, want the path and the client's address", status, body)
	}
	r = m.rec.wait(t, "permissive record", func(r proxy.Record) bool { return r.Transport == proxy.TransportPlaintext })
	if !r.Allowed || r.SourcePrincipal != "" || r.Source.Addr() != m.other.ip4 {
		t.Errorf("PERMISSIVE record: %+v", r)
	}
	// Plaintext capture works over IPv6 as well.
	status, body = get(t, m.other.httpClient(), "http://"+hostPort(m.server.ip6, 8080)+"/from-other-v6")
	if status != 200 || !strings.Contains(body, "path=/from-other-v6") || !strings.Contains(body, "remote=["+m.other.ip6.String()+"]:") {
		t.Fatalf("PERMISSIVE over IPv6: %d %q, want the path and the client's address", status, body)
	}
	m.rec.wait(t, "permissive IPv6 record", func(r proxy.Record) bool {
		return r.Transport == proxy.TransportPlaintext && r.Allowed && r.Source.Addr() == m.other.ip6 && r.Destination == netip.AddrPortFrom(m.server.ip6, 8080)
	})
	m.authz.mu.Lock()
	last := m.authz.conns[len(m.authz.conns)-1]
	m.authz.mu.Unlock()
	if last.SourcePrincipal != "" || last.Transport != proxy.TransportPlaintext || last.DestinationPort != 8080 {
		t.Errorf("AuthorizeConn saw %+v for plaintext", last)
	}

	// L7 applies to plaintext too.
	m.authz.set(func(a *testAuthz) {
		a.l7[8080] = true
		a.denyHTTP = func(r proxy.Request) (proxy.Decision, bool) {
			return proxy.Decision{Body: "Access denied", Policy: "test/cnp"}, r.SourcePrincipal == ""
		}
	})
	status, body = get(t, m.other.httpClient(), url)
	if status != 403 || body != "Access denied" {
		t.Fatalf("PERMISSIVE with L7 deny: %d %q", status, body)
	}
}

// TestCaptureEncrypts looks at the client pod's wire: with the proxy, a
// marker sent by the application never appears in clear and TLS
// application-data records do; without the proxy, the marker is plainly
// visible, which shows the capture would have seen it.
func TestCaptureEncrypts(t *testing.T) {
	m := mustMesh(t)
	marker := "RAMPART-MARKER-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	url := "http://" + hostPort(m.server.ip4, 8080) + "/" + marker
	run := func() [][]byte {
		pc := testenv.StartCapture(t, m.client.path, "eth0")
		status, body := get(t, m.client.httpClient(), url)
		if status != 200 || !strings.Contains(body, marker) {
			t.Fatalf("GET: %d %q", status, body)
		}
		time.Sleep(100 * time.Millisecond) // let the last frames arrive
		return pc.Stop()
	}
	frames := run()
	tlsRecords := 0
	for _, f := range frames {
		if bytes.Contains(f, []byte(marker)) {
			t.Fatalf("marker seen in clear on the client's eth0 with the proxy:\n%q", f)
		}
		if bytes.Contains(f, []byte{0x17, 0x03, 0x03}) {
			tlsRecords++
		}
	}
	if tlsRecords == 0 {
		t.Fatalf("no TLS application data records in %d frames", len(frames))
	}
	t.Logf("with the proxy: %d frames, %d with TLS application data, no marker", len(frames), tlsRecords)

	// Control: without the proxy on either side the same request is
	// plaintext on the wire.
	for _, pod := range []*member{m.client, m.server} {
		if err := m.p.RemoveWorkload("test", pod.role); err != nil {
			t.Fatal(err)
		}
	}
	seen := false
	for _, f := range run() {
		seen = seen || bytes.Contains(f, []byte(marker))
	}
	if !seen {
		t.Fatal("control without the proxy: marker not captured, so the capture proves nothing")
	}
}

// TestBadClientCertificate: the inbound HBONE listener of a pod refuses
// a client certificate from another root, and one without a certificate,
// straight from another pod's network.
func TestBadClientCertificate(t *testing.T) {
	m := mustMesh(t)
	other := mustPKI(t, "another root")
	hbone := hostPort(m.server.ip4, 15008)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"another root", &tls.Config{Certificates: []tls.Certificate{other.leaf(t, clientPrincipal)}, InsecureSkipVerify: true}},
		{"no certificate", &tls.Config{InsecureSkipVerify: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m.rec.reset()
			c, err := m.other.dialer()(context.Background(), "tcp", hbone)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := tc.cfg.Clone()
			cfg.NextProtos, cfg.MinVersion = []string{"h2"}, tls.VersionTLS13
			tc2 := tls.Client(c, cfg)
			tc2.SetDeadline(time.Now().Add(5 * time.Second))
			err = tc2.Handshake()
			if err == nil {
				// TLS 1.3 clients learn of a rejected certificate on
				// their first read.
				_, err = tc2.Read(make([]byte, 1))
			}
			if err == nil {
				t.Fatal("the handshake with a bad client certificate succeeded")
			}
			r := m.rec.wait(t, "refused handshake", func(r proxy.Record) bool { return r.Reporter == proxy.ReporterDestination })
			if r.Allowed || r.Reason != "tls handshake failed" || r.Source.Addr() != m.other.ip4 {
				t.Errorf("record: %+v", r)
			}
		})
	}
	// The good certificate works from the same place, so the refusals
	// above were about the certificate.
	status, err := hboneConnectVia(m.other, hbone, &tls.Config{Certificates: []tls.Certificate{m.certs.leafFor(m.client.workload())}, InsecureSkipVerify: true}, hostPort(m.server.ip4, 8080))
	if err != nil || status != 200 {
		t.Fatalf("good certificate: %d, %v", status, err)
	}
}

// hboneConnectVia is hboneConnect from inside a pod.
func hboneConnectVia(from *member, addr string, cfg *tls.Config, authority string) (int, error) {
	c, err := from.dialer()(context.Background(), "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return hboneOn(c, cfg, authority)
}

// TestWorkloadLifecycle: adding is idempotent, removing deletes the table
// and closes the listeners, and traffic then flows as without the mesh.
func TestWorkloadLifecycle(t *testing.T) {
	m := mustMesh(t)
	if err := m.p.AddWorkload(m.server.workload()); err != nil {
		t.Fatalf("adding the same workload again: %v", err)
	}
	if !hasProxyTable(t, m.server) || !hasProxyTable(t, m.client) {
		t.Fatal("capture tables missing")
	}
	// One rule per family, and still one after installing again, as a
	// restarted node does in a namespace it served before.
	if n := transparentRules(t, m.server); n != 2 {
		t.Fatalf("%d rules for the application's answers, want 2 (IPv4, IPv6)", n)
	}
	ns, err := netns.GetFromPath(m.server.path)
	if err != nil {
		t.Fatal(err)
	}
	err = proxy.InstallTransparentRoutes(ns)
	ns.Close()
	if err != nil {
		t.Fatalf("installing again: %v", err)
	}
	if n := transparentRules(t, m.server); n != 2 {
		t.Fatalf("%d rules after installing again, want 2", n)
	}
	if err := m.p.RemoveWorkload("test", "server"); err != nil {
		t.Fatal(err)
	}
	if err := m.p.RemoveWorkload("test", "server"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if hasProxyTable(t, m.server) {
		t.Fatal("table left after RemoveWorkload")
	}
	if n := transparentRules(t, m.server); n != 0 {
		t.Fatalf("%d rules left after RemoveWorkload", n)
	}
	if _, err := m.other.dialer()(context.Background(), "tcp", hostPort(m.server.ip4, 15008)); err == nil {
		t.Fatal("HBONE listener still open after RemoveWorkload")
	}
	// The server is out of the mesh now: the client's proxy passes
	// through in plaintext and the application answers directly.
	m.res.add(m.server.workload(), false)
	status, body := get(t, m.client.httpClient(), "http://"+hostPort(m.server.ip4, 8080)+"/after")
	if status != 200 || !strings.Contains(body, "remote="+m.client.ip4.String()+":") {
		t.Fatalf("after removal: %d %q", status, body)
	}
	// A changed workload replaces the old one.
	w := m.server.workload()
	m.res.add(w, true)
	if err := m.p.AddWorkload(w); err != nil {
		t.Fatal(err)
	}
	w.ServiceAccount = "renamed-sa"
	if err := m.p.AddWorkload(w); err != nil {
		t.Fatal(err)
	}
	if got := len(m.p.Workloads()); got != 2 {
		t.Fatalf("%d workloads, want 2", got)
	}
}
