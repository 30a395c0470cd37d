package meshnode_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/proxy"
)

// TestRotationUnderTraffic runs two loopback workloads through real
// proxies with 2-second certificates and rotates the CA's root while
// requests flow: leaves are renewed several times, the new root takes over
// and the old one is retired, and no request fails. Tunnels are
// re-established all along (idle timeout shorter than the gap between
// requests), so every phase of the rotation meets fresh handshakes.
func TestRotationUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 10 s")
	}
	auth, err := ca.Open(t.TempDir(), ca.Options{WorkloadTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := meshnode.NewCertificates(auth, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	client := proxy.Workload{Namespace: "shop", Name: "client", ServiceAccount: "client", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.21")}}
	server := proxy.Workload{Namespace: "shop", Name: "server", ServiceAccount: "server", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.22")}}
	ctx := context.Background()
	for _, w := range []proxy.Workload{client, server} {
		if err := certs.Acquire(ctx, w.Namespace, w.ServiceAccount); err != nil {
			t.Fatal(err)
		}
	}
	eng, err := mesh.NewEngine(nil, mesh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var authz meshnode.Authorizer
	authz.Update(meshnode.Snapshot{Mesh: eng, Workloads: map[string]meshnode.Member{
		"shop/client": {ServiceAccount: "client", Mesh: true},
		"shop/server": {ServiceAccount: "server", Mesh: true, HTTPPorts: nil},
	}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hbone := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	p, err := proxy.New(proxy.Config{
		Certificates: certs,
		Resolver: proxy.ResolverFunc(func(ip netip.Addr) (proxy.Workload, bool) {
			if ip == server.IPs[0] {
				return server, true
			}
			return proxy.Workload{}, false
		}),
		Authorizer:  &authz,
		Ports:       proxy.Ports{HBONE: hbone},
		IdleTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, w := range []proxy.Workload{client, server} {
		if err := p.AddWorkload(w); err != nil {
			t.Fatal(err)
		}
	}
	app, err := net.Listen("tcp", "127.0.0.22:0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer app.Close()
	dst := netip.MustParseAddrPort(app.Addr().String())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return p.Dial(ctx, client.Namespace, client.Name, dst)
		},
	}}

	firstRoot := auth.Status().Roots[0].SHA256
	firstSerial := leafSerial(t, certs, server)
	var ok, failed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(9 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := hc.Get(fmt.Sprintf("http://%s/", dst))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && string(b) == "ok" {
					ok.Add(1)
				} else {
					err = fmt.Errorf("status %d %q", resp.StatusCode, b)
				}
			}
			if err != nil {
				failed.Add(1)
				t.Logf("request failed: %v (phase %s)", err, auth.Status().Phase)
			}
			time.Sleep(150 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	if _, err := auth.Rotate(); err != nil {
		t.Fatal(err)
	}
	<-done

	st := auth.Status()
	if failed.Load() != 0 || ok.Load() < 30 {
		t.Errorf("requests: %d ok, %d failed; want 0 failed of at least 30", ok.Load(), failed.Load())
	}
	if st.Phase != ca.RotationStable {
		t.Errorf("rotation phase after 8 s of 2 s certificates = %s, want %s (retired)", st.Phase, ca.RotationStable)
	}
	for _, r := range st.Roots {
		if r.SHA256 == firstRoot && r.Phase != ca.PhaseRetired {
			t.Errorf("old root is %s, want %s", r.Phase, ca.PhaseRetired)
		}
	}
	if s := leafSerial(t, certs, server); s == firstSerial {
		t.Error("the server's certificate was never renewed")
	}
}

func leafSerial(t *testing.T, certs *meshnode.Certificates, w proxy.Workload) string {
	t.Helper()
	src, ok := certs.Source(w.Namespace, w.ServiceAccount)
	if !ok {
		t.Fatalf("no source for %s", w.Key())
	}
	return src.SVID().Chain[0].SerialNumber.String()
}
