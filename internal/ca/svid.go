package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// leafBackdate moves a leaf's NotBefore into the past, so that a peer
// whose clock is a little behind the CA's accepts a certificate issued a
// moment ago. Renewal is scheduled from the time of issue, not from
// NotBefore, so the backdate does not shorten it.
const leafBackdate = 5 * time.Minute

// Bounds on the size of an RSA key in a CSR: below 2048 bits is breakable,
// above 8192 only costs the CA and every peer time.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// SignRequest names the workload a CSR is signed for. The caller is
// trusted to have authenticated the workload as this namespace and service
// account; the CSR is only trusted for its public key.
type SignRequest struct {
	Namespace      string
	ServiceAccount string
	// TTL is the lifetime asked for; zero means Options.WorkloadTTL.
	TTL time.Duration
}

// Issued is a signed workload certificate and what a workload needs with it.
type Issued struct {
	// Leaf is the parsed workload certificate, Chain[0].
	Leaf *x509.Certificate
	// Chain is the leaf followed by the intermediates up to, not
	// including, the root, in DER: what a workload presents.
	Chain [][]byte
	// Bundle is the DER of every root trusted at the time of issue: what
	// a workload verifies its peers against.
	Bundle [][]byte
}

// SignCSR signs csrDER into an X.509 SVID for the workload req names.
//
// The CSR must be well-formed, carry a valid self-signature, and hold an
// ECDSA P-256 key or an RSA key of 2048 to 8192 bits. Everything else in it
// (subject, SANs, extensions) is ignored: the certificate's one name is the
// URI SAN spiffe://<trust domain>/ns/<namespace>/sa/<service account>. Its
// profile is fixed: CA:false, keyUsage digitalSignature (plus keyAgreement
// for ECDSA, keyEncipherment for RSA), extKeyUsage serverAuth and
// clientAuth, a random 128-bit serial, NotBefore five minutes in the past,
// NotAfter the earlier of now+TTL and the end of the signing chain.
func (a *Authority) SignCSR(csrDER []byte, req SignRequest) (*Issued, error) {
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	id, err := WorkloadID(a.td, req.Namespace, req.ServiceAccount)
	if err != nil {
		return nil, err
	}
	ttl := req.TTL
	switch {
	case ttl == 0:
		ttl = a.opts.WorkloadTTL
	case ttl < 0:
		return nil, fmt.Errorf("ca: sign %s: TTL %v is negative: %w", id, ttl, ErrInvalidTTL)
	case ttl > a.opts.MaxWorkloadTTL:
		return nil, fmt.Errorf("ca: sign %s: TTL %v exceeds the maximum %v: %w", id, ttl, a.opts.MaxWorkloadTTL, ErrInvalidTTL)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Clock.Now()
	s, err := a.be.signer(now)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-leafBackdate)
	if notBefore.Before(s.cert.NotBefore) {
		notBefore = s.cert.NotBefore
	}
	notAfter := now.Add(ttl)
	if notAfter.After(s.notAfter) {
		notAfter = s.notAfter
	}
	// X.509 times have whole seconds; a leaf must live past the second
	// it is issued in.
	if !notAfter.Truncate(time.Second).After(now) {
		return nil, fmt.Errorf("ca: sign %s: %w at %s", id, ErrCAExpired, s.notAfter.UTC().Format(time.RFC3339))
	}
	// The root must stay trusted while this leaf is valid; that is on disk
	// before the leaf exists.
	if err := s.record(notAfter); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              leafKeyUsage(csr),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cert, csr.PublicKey, s.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s: parse issued certificate: %w", id, err)
	}
	iss := &Issued{Leaf: leaf, Chain: append([][]byte{der}, s.chain...)}
	for _, r := range a.be.bundle(now) {
		iss.Bundle = append(iss.Bundle, r.Raw)
	}
	return iss, nil
}

// Sign implements Signer for a workload in the same process as the
// Authority: it signs with the default lifetime and returns the chain and
// the trust bundle in DER.
func (a *Authority) Sign(ctx context.Context, csrDER []byte, namespace, serviceAccount string) (chain, bundle [][]byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	iss, err := a.SignCSR(csrDER, SignRequest{Namespace: namespace, ServiceAccount: serviceAccount})
	if err != nil {
		return nil, nil, err
	}
	return iss.Chain, iss.Bundle, nil
}

var _ Signer = (*Authority)(nil)

// parseCSR parses csrDER and checks its key and self-signature. The key
// is checked first, so a huge RSA key costs nothing to refuse.
func parseCSR(csrDER []byte) (*x509.CertificateRequest, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, &CSRError{Reason: "parse csr", Err: err}
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, &CSRError{Reason: fmt.Sprintf("csr key is ECDSA on %s, want P-256", pub.Curve.Params().Name)}
		}
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < minRSABits || n > maxRSABits {
			return nil, &CSRError{Reason: fmt.Sprintf("csr key is RSA of %d bits, want %d to %d", n, minRSABits, maxRSABits)}
		}
	default:
		return nil, &CSRError{Reason: fmt.Sprintf("csr key is %s, want ECDSA P-256 or RSA", csr.PublicKeyAlgorithm)}
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, &CSRError{Reason: "csr signature", Err: err}
	}
	return csr, nil
}

// leafKeyUsage returns digitalSignature, which TLS 1.3 needs for either
// key type, plus the legacy usage that matches the key: keyAgreement for
// ECDSA (ECDH), keyEncipherment for RSA (RSA key transport).
func leafKeyUsage(csr *x509.CertificateRequest) x509.KeyUsage {
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
}

// IDFromLeaf returns the SPIFFE ID of a workload certificate: its one URI
// SAN. It does not verify the certificate.
func IDFromLeaf(leaf *x509.Certificate) (spiffeid.ID, error) {
	switch len(leaf.URIs) {
	case 0:
		return spiffeid.ID{}, fmt.Errorf("ca: certificate has no URI SAN")
	case 1:
	default:
		return spiffeid.ID{}, fmt.Errorf("ca: certificate has %d URI SANs, want 1", len(leaf.URIs))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: URI SAN %q is not a SPIFFE ID: %w", leaf.URIs[0], err)
	}
	return id, nil
}
