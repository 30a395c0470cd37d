package ca_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/rampartsec/rampart/internal/ca"
)

func TestVerifyPeer(t *testing.T) {
	now := t0
	root := newTestCA(t, "Test Root", nil, now.Add(-24*time.Hour), now.Add(24*time.Hour))
	inter := newTestCA(t, "Test Intermediate", root, now.Add(-24*time.Hour), now.Add(24*time.Hour))
	stranger := newTestCA(t, "Stranger Root", nil, now.Add(-24*time.Hour), now.Add(24*time.Hour))
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root.cert})
	key := newP256(t)
	const web = "spiffe://cluster.local/ns/default/sa/web"

	// leaf signs a copy of the good profile after edit breaks it.
	leaf := func(by *testCA, edit func(*x509.Certificate)) *x509.Certificate {
		tmpl := leafTemplate(now, web)
		if edit != nil {
			edit(tmpl)
		}
		return by.sign(t, tmpl, key)
	}
	uris := func(s ...string) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			c.URIs = nil
			for _, x := range s {
				u, _ := url.Parse(x)
				c.URIs = append(c.URIs, u)
			}
		}
	}

	tests := []struct {
		name     string
		chain    []*x509.Certificate
		role     ca.Role
		wantKind error // nil: accepted
		wantErr  string
	}{
		{name: "good", chain: []*x509.Certificate{leaf(root, nil)}},
		{name: "good through an intermediate", chain: []*x509.Certificate{leaf(inter, nil), inter.cert}},
		{name: "good as client", chain: []*x509.Certificate{leaf(root, nil)}, role: ca.RoleClient},
		{
			name:  "no extended key usage at all means any",
			chain: []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.ExtKeyUsage = nil })},
		},
		{
			name:     "no certificate",
			chain:    nil,
			wantKind: ca.ErrNoPeerCertificate,
			wantErr:  "ca: verify peer: no certificate presented",
		},
		{
			name:     "another trust domain",
			chain:    []*x509.Certificate{leaf(root, uris("spiffe://evil.example/ns/default/sa/web"))},
			wantKind: ca.ErrForeignTrustDomain,
			wantErr:  `ca: verify peer spiffe://evil.example/ns/default/sa/web: trust domain "evil.example" is not "cluster.local"`,
		},
		{
			name:     "expired",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.NotAfter = now.Add(-time.Second) })},
			wantKind: ca.ErrExpired,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: certificate expired at 2030-01-01T11:59:59Z",
		},
		{
			name:     "not yet valid",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.NotBefore = now.Add(time.Minute) })},
			wantKind: ca.ErrNotYetValid,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: certificate not valid until 2030-01-01T12:01:00Z",
		},
		{
			name: "leaf is a CA",
			chain: []*x509.Certificate{leaf(root, func(c *x509.Certificate) {
				c.IsCA = true
				c.KeyUsage |= x509.KeyUsageCertSign
			})},
			wantKind: ca.ErrLeafIsCA,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: leaf is a CA certificate (basicConstraints CA:true)",
		},
		{
			name:     "no URI SAN",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.URIs = nil; c.DNSNames = []string{"web.default.svc"} })},
			wantKind: ca.ErrNoSPIFFEID,
			wantErr:  "ca: verify peer: certificate has no URI SAN",
		},
		{
			name:     "URI SAN is not SPIFFE",
			chain:    []*x509.Certificate{leaf(root, uris("https://web.default.svc/"))},
			wantKind: ca.ErrNoSPIFFEID,
			wantErr:  `ca: verify peer: URI SAN "https://web.default.svc/" is not a SPIFFE ID: scheme is missing or invalid`,
		},
		{
			name:     "two URI SANs",
			chain:    []*x509.Certificate{leaf(root, uris(web, "spiffe://cluster.local/ns/kube-system/sa/admin"))},
			wantKind: ca.ErrNoSPIFFEID,
			wantErr:  "ca: verify peer: certificate has 2 URI SANs, want 1",
		},
		{
			name:     "no digitalSignature",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement })},
			wantKind: ca.ErrBadKeyUsage,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: leaf key usage lacks digitalSignature",
		},
		{
			name:     "keyCertSign on a leaf",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign })},
			wantKind: ca.ErrBadKeyUsage,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: leaf key usage includes keyCertSign",
		},
		{
			name:     "cRLSign on a leaf",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCRLSign })},
			wantKind: ca.ErrBadKeyUsage,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: leaf key usage includes cRLSign",
		},
		{
			name:     "client-only certificate on a server",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })},
			role:     ca.RoleServer,
			wantKind: ca.ErrBadKeyUsage,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: leaf extended key usage lacks serverAuth",
		},
		{
			name:     "server-only certificate on a client",
			chain:    []*x509.Certificate{leaf(root, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })},
			role:     ca.RoleClient,
			wantKind: ca.ErrBadKeyUsage,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: leaf extended key usage lacks clientAuth",
		},
		{
			name:     "chain not rooted in the bundle",
			chain:    []*x509.Certificate{leaf(stranger, nil)},
			wantKind: ca.ErrUntrustedChain,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: chain does not lead to a root of the trust bundle: x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority",
		},
		{
			name:     "intermediate missing",
			chain:    []*x509.Certificate{leaf(inter, nil)},
			wantKind: ca.ErrUntrustedChain,
			wantErr:  "ca: verify peer spiffe://cluster.local/ns/default/sa/web: chain does not lead to a root of the trust bundle: x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := tt.role
			if role == 0 {
				role = ca.RoleServer
			}
			id, err := ca.VerifyPeer(tt.chain, bundle, role, now)
			if tt.wantKind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.String() != web {
					t.Errorf("ID %s, want %s", id, web)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error\n  %v\nwant\n  %s", err, tt.wantErr)
			}
			if !errors.Is(err, tt.wantKind) || !errors.Is(err, ca.ErrPeerRejected) {
				t.Errorf("errors.Is(err, %v) or errors.Is(err, ErrPeerRejected) is false", tt.wantKind)
			}
			var pe *ca.PeerError
			if !errors.As(err, &pe) || pe.Kind != tt.wantKind {
				t.Errorf("not a *PeerError of kind %v", tt.wantKind)
			}
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	web := issue(t, a, clock, "default", "web")
	api := issue(t, a, clock, "prod", "api")
	webID := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/web")
	apiID := spiffeid.RequireFromString("spiffe://cluster.local/ns/prod/sa/api")

	t.Run("mutual TLS 1.3 with the right peer", func(t *testing.T) {
		cerr, serr, ccs, scs := handshake(t, ca.ClientTLSConfig(web, spiffeid.MatchID(apiID)), ca.ServerTLSConfig(api, nil))
		if cerr != nil || serr != nil {
			t.Fatalf("client: %v; server: %v", cerr, serr)
		}
		if ccs.Version != tls.VersionTLS13 {
			t.Errorf("version %x, want TLS 1.3", ccs.Version)
		}
		if id, err := ca.PeerID(ccs); err != nil || id != apiID {
			t.Errorf("client sees %v, %v; want %s", id, err, apiID)
		}
		if id, err := ca.PeerID(scs); err != nil || id != webID {
			t.Errorf("server sees %v, %v; want %s", id, err, webID)
		}
		if got := ca.Principal(webID); got != "cluster.local/ns/default/sa/web" {
			t.Errorf("principal %q", got)
		}
	})

	t.Run("client wants another server", func(t *testing.T) {
		cerr, serr, _, _ := handshake(t, ca.ClientTLSConfig(web, spiffeid.MatchID(webID)), ca.ServerTLSConfig(api, nil))
		want := `ca: verify peer spiffe://cluster.local/ns/prod/sa/api: not an authorized peer: unexpected ID "spiffe://cluster.local/ns/prod/sa/api"`
		if cerr == nil || cerr.Error() != want || !errors.Is(cerr, ca.ErrUnauthorized) {
			t.Errorf("client error %v, want %s", cerr, want)
		}
		if serr == nil {
			t.Error("server saw the connection succeed")
		}
	})

	t.Run("server authorizes only some clients", func(t *testing.T) {
		cerr, serr, _, _ := handshake(t, ca.ClientTLSConfig(web, nil), ca.ServerTLSConfig(api, spiffeid.MatchID(apiID)))
		want := `ca: verify peer spiffe://cluster.local/ns/default/sa/web: not an authorized peer: unexpected ID "spiffe://cluster.local/ns/default/sa/web"`
		if serr == nil || serr.Error() != want {
			t.Errorf("server error %v, want %s", serr, want)
		}
		if cerr == nil {
			t.Error("client saw the connection succeed")
		}
	})

	t.Run("client without a certificate", func(t *testing.T) {
		plain := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		_, serr, _, _ := handshake(t, plain, ca.ServerTLSConfig(api, nil))
		if serr == nil || !strings.Contains(serr.Error(), "client didn't provide a certificate") {
			t.Errorf("server error %v, want a missing client certificate", serr)
		}
	})

	t.Run("TLS 1.2 refused", func(t *testing.T) {
		old := ca.ClientTLSConfig(web, nil)
		old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		cerr, serr, _, _ := handshake(t, old, ca.ServerTLSConfig(api, nil))
		if cerr == nil || serr == nil || !strings.Contains(serr.Error(), "client offered only unsupported versions") {
			t.Errorf("client: %v; server: %v; want a protocol version refusal", cerr, serr)
		}
	})

	t.Run("server of another trust domain", func(t *testing.T) {
		other, _ := mustOpen(t, ca.Options{Clock: clock, TrustDomain: "other.example"})
		foreign := issue(t, other, clock, "default", "api")
		cerr, _, _, _ := handshake(t, ca.ClientTLSConfig(web, nil), ca.ServerTLSConfig(foreign, nil))
		want := `ca: verify peer spiffe://other.example/ns/default/sa/api: trust domain "other.example" is not "cluster.local"`
		if cerr == nil || cerr.Error() != want {
			t.Errorf("client error %v, want %s", cerr, want)
		}
	})

	t.Run("expired client", func(t *testing.T) {
		late := newFakeClock(t0.Add(25 * time.Hour))
		server := &svid{cert: api.cert, bundle: api.bundle, clock: late}
		_, serr, _, _ := handshake(t, ca.ClientTLSConfig(web, nil), ca.ServerTLSConfig(server, nil))
		want := "ca: verify peer spiffe://cluster.local/ns/default/sa/web: certificate expired at 2030-01-02T12:00:00Z"
		if serr == nil || serr.Error() != want || !errors.Is(serr, ca.ErrExpired) {
			t.Errorf("server error %v, want %s", serr, want)
		}
	})

	t.Run("certificate and bundle are read on every handshake", func(t *testing.T) {
		server := &svid{cert: api.cert, bundle: api.bundle, clock: clock}
		cfg := ca.ServerTLSConfig(server, nil)
		_, _, ccs, _ := handshake(t, ca.ClientTLSConfig(web, nil), cfg)
		renewed := issue(t, a, clock, "prod", "api")
		server.cert = renewed.cert
		_, _, ccs2, _ := handshake(t, ca.ClientTLSConfig(web, nil), cfg)
		if len(ccs.PeerCertificates) == 0 || len(ccs2.PeerCertificates) == 0 {
			t.Fatal("no peer certificates")
		}
		if ccs.PeerCertificates[0].SerialNumber.Cmp(ccs2.PeerCertificates[0].SerialNumber) == 0 {
			t.Error("the same config presented the old certificate after renewal")
		}
		// An empty bundle refuses everyone from the next handshake on.
		server.bundle = x509bundle.New(td)
		_, serr, _, _ := handshake(t, ca.ClientTLSConfig(web, nil), cfg)
		if !errors.Is(serr, ca.ErrUntrustedChain) {
			t.Errorf("server with an empty bundle: %v, want an untrusted chain", serr)
		}
	})
}

func TestPeerIDErrors(t *testing.T) {
	if _, err := ca.PeerID(tls.ConnectionState{}); err == nil || err.Error() != "ca: peer id: handshake not complete" {
		t.Errorf("incomplete handshake: %v", err)
	}
	if _, err := ca.PeerID(tls.ConnectionState{HandshakeComplete: true}); !errors.Is(err, ca.ErrNoPeerCertificate) {
		t.Errorf("no peer certificate: %v", err)
	}
}

func TestVerifyPeerWithoutBundle(t *testing.T) {
	root := newTestCA(t, "Test Root", nil, t0.Add(-time.Hour), t0.Add(time.Hour))
	leaf := root.sign(t, leafTemplate(t0, "spiffe://cluster.local/ns/default/sa/web"), newP256(t))
	_, err := ca.VerifyPeer([]*x509.Certificate{leaf}, nil, ca.RoleServer, t0)
	if want := "ca: verify peer: no trust bundle to verify against"; err == nil || err.Error() != want || !errors.Is(err, ca.ErrUntrustedChain) {
		t.Errorf("error %v, want %s", err, want)
	}
}
