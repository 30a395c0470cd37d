package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/url"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/rampartsec/rampart/internal/ca"
)

// FuzzSignCSR feeds SignCSR arbitrary requests. Invariants: it never
// panics; it refuses with an invalid-CSR or invalid-identity error, and
// nothing else; and whatever it issues is for a CSR that parses, is
// self-signed and carries an accepted key, names exactly the requested
// workload, and verifies as an SVID.
func FuzzSignCSR(f *testing.F) {
	clock := newFakeClock(t0)
	a, err := ca.Open(f.TempDir(), ca.Options{Clock: clock})
	if err != nil {
		f.Fatal(err)
	}
	bundle := x509bundle.FromX509Authorities(td, a.Bundle())

	p256 := newP256(f)
	good := newCSR(f, p256, nil)
	// A well-formed request: must be issued.
	f.Add(good, "default", "web")
	// A request that asks for names of its own: issued, names ignored.
	u, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	f.Add(newCSR(f, p256, &x509.CertificateRequest{DNSNames: []string{"evil"}, URIs: []*url.URL{u}}), "default", "web")
	// RSA 2048: the smallest RSA key accepted.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.Add(newCSR(f, rsaKey, nil), "default", "web")
	// A flipped bit in the signature: the signature check must catch it.
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 1
	f.Add(bad, "default", "web")
	// Truncated: the parser must refuse without reading past the end.
	f.Add(good[:len(good)/2], "default", "web")
	// Keys of the wrong kind.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	f.Add(newCSR(f, p384, nil), "default", "web")
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(newCSR(f, ed, nil), "default", "web")
	// A certificate, not a request.
	f.Add(a.Bundle()[0].Raw, "default", "web")
	// Nothing at all.
	f.Add([]byte{}, "default", "web")
	// A good request for identities that must be refused.
	f.Add(good, "Default", "web")
	f.Add(good, "default", "../admin")
	f.Add(good, "", "")

	f.Fuzz(func(t *testing.T, csrDER []byte, ns, sa string) {
		iss, err := a.SignCSR(csrDER, ca.SignRequest{Namespace: ns, ServiceAccount: sa})
		csr, perr := x509.ParseCertificateRequest(csrDER)
		if err != nil {
			if !errors.Is(err, ca.ErrInvalidCSR) && !errors.Is(err, ca.ErrInvalidIdentity) {
				t.Fatalf("refused with an unexpected error: %v", err)
			}
			if perr != nil && !errors.Is(err, ca.ErrInvalidCSR) {
				t.Fatalf("unparsable CSR refused for another reason: %v", err)
			}
			return
		}
		if perr != nil {
			t.Fatalf("issued for a CSR that does not parse: %v", perr)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("issued for a CSR with a bad signature: %v", err)
		}
		switch k := csr.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				t.Fatalf("issued for an ECDSA key on %s", k.Curve.Params().Name)
			}
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				t.Fatalf("issued for an RSA key of %d bits", k.N.BitLen())
			}
		default:
			t.Fatalf("issued for a %T key", k)
		}
		want, err := ca.WorkloadID(td, ns, sa)
		if err != nil {
			t.Fatalf("issued for an invalid identity: %v", err)
		}
		if len(iss.Leaf.URIs) != 1 || iss.Leaf.URIs[0].String() != want.String() || len(iss.Leaf.DNSNames) != 0 {
			t.Fatalf("issued for %v %v, want exactly %s", iss.Leaf.URIs, iss.Leaf.DNSNames, want)
		}
		if pub, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(iss.Leaf.PublicKey) {
			t.Fatal("issued for another key than the CSR's")
		}
		for _, role := range []ca.Role{ca.RoleServer, ca.RoleClient} {
			if _, err := ca.VerifyPeer([]*x509.Certificate{iss.Leaf}, bundle, role, clock.Now()); err != nil {
				t.Fatalf("issued certificate does not verify: %v", err)
			}
		}
	})
}
