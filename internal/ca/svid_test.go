package ca_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/rampartsec/rampart/internal/ca"
)

var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

func TestSignCSRProfile(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	key := newP256(t)
	// The CSR asks for names and a subject of its own; none may appear in
	// the certificate.
	u, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	csr := newCSR(t, key, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		DNSNames:       []string{"kubernetes.default.svc"},
		EmailAddresses: []string{"root@example.com"},
		IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
		URIs:           []*url.URL{u},
	})
	iss, err := a.SignCSR(csr, ca.SignRequest{Namespace: "default", ServiceAccount: "web"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := iss.Leaf
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/web" {
		t.Errorf("URI SANs %v, want exactly spiffe://cluster.local/ns/default/sa/web", leaf.URIs)
	}
	if len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 {
		t.Errorf("names from the CSR leaked: %v %v %v", leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses)
	}
	if len(leaf.Subject.Names) != 0 {
		t.Errorf("subject %q, want empty", leaf.Subject)
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidSAN) && !ext.Critical {
			t.Error("SAN extension not critical although the subject is empty (RFC 5280 4.2.1.6)")
		}
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		t.Error("leaf is not CA:false")
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement {
		t.Errorf("key usage %v, want digitalSignature|keyAgreement", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usage %v, want serverAuth, clientAuth", leaf.ExtKeyUsage)
	}
	if n := leaf.SerialNumber; n.Sign() <= 0 || n.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", n)
	}
	if got, want := leaf.NotBefore, t0.Add(-5*time.Minute); !got.Equal(want) {
		t.Errorf("NotBefore %v, want %v (five minutes back)", got, want)
	}
	if got, want := leaf.NotAfter, t0.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter %v, want %v (default TTL)", got, want)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("leaf is not for the CSR's key")
	}
	root := a.Bundle()[0]
	if len(iss.Chain) != 1 || len(iss.Bundle) != 1 || string(iss.Bundle[0]) != string(root.Raw) {
		t.Errorf("chain of %d and bundle of %d, want the leaf alone and the root", len(iss.Chain), len(iss.Bundle))
	}
	if string(leaf.AuthorityKeyId) != string(root.SubjectKeyId) {
		t.Error("leaf's authority key ID is not the root's subject key ID")
	}
	id, _, err := x509svid.Verify([]*x509.Certificate{leaf}, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}), x509svid.WithTime(t0))
	if err != nil || id.String() != "spiffe://cluster.local/ns/default/sa/web" {
		t.Errorf("go-spiffe verification: %v, %v", id, err)
	}

	// Serials differ from one leaf to the next.
	again, err := a.SignCSR(csr, ca.SignRequest{Namespace: "default", ServiceAccount: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two leaves share a serial number")
	}
}

func TestSignCSRRSA(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.SignCSR(newCSR(t, key, nil), ca.SignRequest{Namespace: "default", ServiceAccount: "legacy"})
	if err != nil {
		t.Fatal(err)
	}
	if iss.Leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("key usage %v, want digitalSignature|keyEncipherment for RSA", iss.Leaf.KeyUsage)
	}
}

func TestSignCSRTTL(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock, WorkloadTTL: time.Hour, MaxWorkloadTTL: 48 * time.Hour, RootTTL: 72 * time.Hour})
	csr := newCSR(t, newP256(t), nil)
	tests := []struct {
		name         string
		ttl          time.Duration
		wantNotAfter time.Time
		wantErr      string
	}{
		{name: "default", ttl: 0, wantNotAfter: t0.Add(time.Hour)},
		{name: "asked", ttl: 2 * time.Hour, wantNotAfter: t0.Add(2 * time.Hour)},
		{name: "maximum", ttl: 48 * time.Hour, wantNotAfter: t0.Add(48 * time.Hour)},
		{name: "above maximum", ttl: 49 * time.Hour, wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: TTL 49h0m0s exceeds the maximum 48h0m0s: invalid certificate lifetime"},
		{name: "negative", ttl: -time.Second, wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: TTL -1s is negative: invalid certificate lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := a.SignCSR(csr, ca.SignRequest{Namespace: "default", ServiceAccount: "web", TTL: tt.ttl})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ca.ErrInvalidTTL) {
					t.Fatalf("error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !iss.Leaf.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter %v, want %v", iss.Leaf.NotAfter, tt.wantNotAfter)
			}
		})
	}

	// Near the end of the root, a leaf lives only as long as the root.
	clock.Advance(71 * time.Hour)
	iss, err := a.SignCSR(csr, ca.SignRequest{Namespace: "default", ServiceAccount: "web", TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if root := a.Bundle()[0]; !iss.Leaf.NotAfter.Equal(root.NotAfter) {
		t.Errorf("NotAfter %v, want the root's %v", iss.Leaf.NotAfter, root.NotAfter)
	}
	// Past the end of the root, nothing is issued.
	clock.Advance(2 * time.Hour)
	_, err = a.SignCSR(csr, ca.SignRequest{Namespace: "default", ServiceAccount: "web"})
	if want := "ca: sign spiffe://cluster.local/ns/default/sa/web: signing certificate expired at 2030-01-04T12:00:00Z"; err == nil || err.Error() != want || !errors.Is(err, ca.ErrCAExpired) {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestSignCSRRejects(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	good := newCSR(t, newP256(t), nil)
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-5] ^= 0xff
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)

	const ns, sa = "default", "web"
	tests := []struct {
		name    string
		csr     []byte
		ns, sa  string
		wantErr string
		wantIs  error
	}{
		{name: "empty", csr: nil, ns: ns, sa: sa, wantErr: "ca: parse csr: asn1: syntax error: sequence truncated", wantIs: ca.ErrInvalidCSR},
		{name: "garbage", csr: []byte("not a csr"), ns: ns, sa: sa, wantErr: "ca: parse csr: asn1: structure error: tags don't match", wantIs: ca.ErrInvalidCSR},
		{name: "certificate instead of CSR", csr: a.Bundle()[0].Raw, ns: ns, sa: sa, wantErr: "ca: parse csr: ", wantIs: ca.ErrInvalidCSR},
		{name: "bad signature", csr: badSig, ns: ns, sa: sa, wantErr: "ca: csr signature: x509: ECDSA verification failure", wantIs: ca.ErrInvalidCSR},
		{name: "P-384 key", csr: newCSR(t, p384, nil), ns: ns, sa: sa, wantErr: "ca: csr key is ECDSA on P-384, want P-256", wantIs: ca.ErrInvalidCSR},
		{name: "RSA 1024 key", csr: newCSR(t, rsa1024, nil), ns: ns, sa: sa, wantErr: "ca: csr key is RSA of 1024 bits, want 2048 to 8192", wantIs: ca.ErrInvalidCSR},
		{name: "Ed25519 key", csr: newCSR(t, ed, nil), ns: ns, sa: sa, wantErr: "ca: csr key is Ed25519, want ECDSA P-256 or RSA", wantIs: ca.ErrInvalidCSR},
		{name: "upper-case namespace", csr: good, ns: "Default", sa: sa, wantErr: `ca: namespace "Default": must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`, wantIs: ca.ErrInvalidIdentity},
		{name: "empty namespace", csr: good, ns: "", sa: sa, wantErr: `ca: namespace "": must be a DNS label`, wantIs: ca.ErrInvalidIdentity},
		{name: "namespace with a slash", csr: good, ns: "a/sa/b", sa: sa, wantErr: `ca: namespace "a/sa/b": must be a DNS label`, wantIs: ca.ErrInvalidIdentity},
		{name: "namespace ending in a dash", csr: good, ns: "web-", sa: sa, wantErr: `ca: namespace "web-": must be a DNS label`, wantIs: ca.ErrInvalidIdentity},
		{name: "long namespace", csr: good, ns: strings.Repeat("a", 64), sa: sa, wantErr: `ca: namespace "aaaa`, wantIs: ca.ErrInvalidIdentity},
		{name: "empty service account", csr: good, ns: ns, sa: "", wantErr: `ca: service account "": must be a DNS subdomain: at most 253 characters of dot-separated DNS labels`, wantIs: ca.ErrInvalidIdentity},
		{name: "dot-dot service account", csr: good, ns: ns, sa: "..", wantErr: `ca: service account "..": must be a DNS subdomain`, wantIs: ca.ErrInvalidIdentity},
		{name: "service account with a slash", csr: good, ns: ns, sa: "web/../admin", wantErr: `ca: service account "web/../admin": must be a DNS subdomain`, wantIs: ca.ErrInvalidIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := a.SignCSR(tt.csr, ca.SignRequest{Namespace: tt.ns, ServiceAccount: tt.sa})
			if err == nil {
				t.Fatalf("issued %v", iss.Leaf.URIs)
			}
			if !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("error\n  %v\nwant it to start with\n  %s", err, tt.wantErr)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(err, %v) is false", tt.wantIs)
			}
		})
	}
}

func TestSignCSRConcurrent(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	const n = 16
	serials := make([]*big.Int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
			iss, err := a.SignCSR(csr, ca.SignRequest{Namespace: "default", ServiceAccount: "web"})
			if err != nil {
				errs[i] = err
				return
			}
			serials[i] = iss.Leaf.SerialNumber
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("signature %d: %v", i, errs[i])
		}
		if seen[serials[i].String()] {
			t.Errorf("serial %v issued twice", serials[i])
		}
		seen[serials[i].String()] = true
	}
}

func TestAuthorityIsSigner(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	var s ca.Signer = a
	chain, bundle, err := s.Sign(context.Background(), newCSR(t, newP256(t), nil), "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/web" || len(bundle) != 1 {
		t.Errorf("signed %v with a bundle of %d", leaf.URIs, len(bundle))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Sign(ctx, newCSR(t, newP256(t), nil), "default", "web"); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign with a cancelled context: %v, want context.Canceled", err)
	}
}
