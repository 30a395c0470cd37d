package meshnode_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/proxy"
)

// fixedClock is a clock stopped at t whose timers never fire, to issue
// certificates in the past.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                  { return c.t }
func (c fixedClock) NewTimer(time.Duration) ca.Timer { return idleTimer{} }

type idleTimer struct{}

func (idleTimer) C() <-chan time.Time { return nil }
func (idleTimer) Stop() bool          { return true }

// impostor presents a certificate of its own choosing as the client and
// checks nothing of the server, so that the server's verdict on the
// certificate is what the test sees.
type impostor struct {
	*meshnode.Certificates
	cert *tls.Certificate
}

func (i impostor) ClientConfig(_, _ proxy.Workload) (*tls.Config, error) {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{*i.cert},
		InsecureSkipVerify: true,
		VerifyConnection:   func(tls.ConnectionState) error { return nil },
	}, nil
}

type recorder struct {
	mu   sync.Mutex
	recs []proxy.Record
}

func (r *recorder) Record(rec proxy.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

// TestBadPeerCertificates sends tunnels with certificates the node must
// refuse through a real proxy and the node's certificate binding: each is
// refused at the handshake, and the refusal names the rule it broke.
func TestBadPeerCertificates(t *testing.T) {
	good, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := meshnode.NewCertificates(good, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	ctx := context.Background()
	if err := certs.Acquire(ctx, "shop", "server"); err != nil {
		t.Fatal(err)
	}
	leaf := func(t *testing.T, opts ca.Options, ns, sa string) *tls.Certificate {
		t.Helper()
		a, err := ca.Open(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		src, err := ca.NewSource(ctx, a, ca.SourceOptions{Namespace: ns, ServiceAccount: sa, TrustDomain: a.TrustDomain().Name(), Clock: opts.Clock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { src.Close() })
		c, err := src.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	past := fixedClock{time.Now().Add(-48 * time.Hour)}
	for _, tc := range []struct {
		name string
		cert func(t *testing.T) *tls.Certificate
		want string
	}{
		{"another trust domain", func(t *testing.T) *tls.Certificate {
			return leaf(t, ca.Options{TrustDomain: "evil.example"}, "shop", "client")
		}, `trust domain "evil.example" is not "cluster.local"`},
		{"another root of the same trust domain", func(t *testing.T) *tls.Certificate {
			return leaf(t, ca.Options{}, "shop", "client")
		}, "chain does not lead to a root of the trust bundle"},
		{"expired", func(t *testing.T) *tls.Certificate {
			return leaf(t, ca.Options{Clock: past, WorkloadTTL: time.Hour}, "shop", "client")
		}, "certificate expired at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			eng, _ := mesh.NewEngine(nil, mesh.Options{})
			var authz meshnode.Authorizer
			client := proxy.Workload{Namespace: "shop", Name: "client", ServiceAccount: "client", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.31")}}
			server := proxy.Workload{Namespace: "shop", Name: "server", ServiceAccount: "server", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.32")}}
			authz.Update(meshnode.Snapshot{Mesh: eng, Workloads: map[string]meshnode.Member{
				"shop/client": {ServiceAccount: "client", Mesh: true}, "shop/server": {ServiceAccount: "server", Mesh: true},
			}})
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			hbone := uint16(l.Addr().(*net.TCPAddr).Port)
			l.Close()
			p, err := proxy.New(proxy.Config{
				Certificates: impostor{Certificates: certs, cert: tc.cert(t)},
				Resolver: proxy.ResolverFunc(func(ip netip.Addr) (proxy.Workload, bool) {
					return server, ip == server.IPs[0]
				}),
				Authorizer: &authz,
				Recorder:   rec,
				Ports:      proxy.Ports{HBONE: hbone},
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
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if c, err := p.Dial(dctx, "shop", "client", netip.AddrPortFrom(server.IPs[0], 8080)); err == nil {
				c.Close()
				t.Fatal("a tunnel with a bad certificate was accepted")
			}
			deadline := time.Now().Add(2 * time.Second)
			for {
				rec.mu.Lock()
				var found string
				for _, r := range rec.recs {
					if r.Reporter == proxy.ReporterDestination && !r.Allowed {
						found = r.Error
					}
				}
				rec.mu.Unlock()
				if strings.Contains(found, tc.want) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("server-side record of the refusal: %q, want it to name %q", found, tc.want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
