package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// rootBackdate moves a new root's NotBefore into the past, so that a peer
// whose clock is behind still accepts it.
const rootBackdate = time.Hour

// newRoot creates the generation-th self-signed root of td: an ECDSA P-256
// key and a CA certificate valid for ttl. The certificate carries the trust
// domain both as its organisation and, as SPIFFE allows for signing
// certificates, as the URI SAN spiffe://<trust domain>, so that an operator
// looking at it can tell what it serves.
func newRoot(td spiffeid.TrustDomain, generation int, now time.Time, ttl time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{td.Name()},
			CommonName:   fmt.Sprintf("Rampart root CA %d", generation),
		},
		NotBefore:             now.Add(-rootBackdate),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: parse root certificate: %w", err)
	}
	return cert, key, nil
}

// randomSerial returns a random positive 128-bit serial number. Random
// serials make every certificate unique without a counter to persist, and
// keep an attacker from predicting the bytes of a certificate to come.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("ca: serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}
