package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/rampartsec/rampart/internal/ca"
)

// nginxServerName is the DNS name in the server-side nginx's certificate.
// nginx checks an upstream's certificate against a host name and cannot
// match the URI SAN that is a SPIFFE certificate's only name.
const nginxServerName = "server.bench.svc.cluster.local"

// nginxPKI names the PEM files nginx is configured with.
type nginxPKI struct {
	root                  string // the Rampart root, to verify peers
	clientCert, clientKey string
	serverCert, serverKey string
}

// writeNginxPKI writes the certificates of the nginx pair into dir, all
// under the Rampart root of the Authority in caDir:
//
//   - the client side's is an X.509 SVID issued by the Authority, exactly
//     what a Rampart workload presents (cluster.local/ns/bench/sa/client);
//   - the server side's has the same profile and SPIFFE ID
//     (.../sa/server) plus the DNS name nginxServerName, which the
//     Authority does not issue: it is signed with the root's key, read from
//     the state directory (docs/ca.md documents the layout).
//
// Keys are ECDSA P-256, as Rampart's.
func writeNginxPKI(a *ca.Authority, caDir, dir string) (nginxPKI, error) {
	p := nginxPKI{
		root:       filepath.Join(dir, "root.pem"),
		clientCert: filepath.Join(dir, "nginx-client.pem"), clientKey: filepath.Join(dir, "nginx-client-key.pem"),
		serverCert: filepath.Join(dir, "nginx-server.pem"), serverKey: filepath.Join(dir, "nginx-server-key.pem"),
	}
	roots := a.Bundle()
	if len(roots) != 1 {
		return p, fmt.Errorf("the authority trusts %d roots, want 1", len(roots))
	}
	root := roots[0]
	if err := os.WriteFile(p.root, certPEM(root.Raw), 0o644); err != nil {
		return p, err
	}

	// Client side: an SVID from the Authority.
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return p, err
	}
	iss, err := a.SignCSR(csr, ca.SignRequest{Namespace: benchNamespace, ServiceAccount: clientName})
	if err != nil {
		return p, fmt.Errorf("sign nginx client certificate: %w", err)
	}
	if err := writeCertAndKey(p.clientCert, p.clientKey, iss.Chain, key); err != nil {
		return p, err
	}

	// Server side: signed with the root's key, with a DNS name.
	rootKey, err := findRootKey(caDir, root)
	if err != nil {
		return p, err
	}
	id, err := ca.WorkloadID(a.TrustDomain(), benchNamespace, serverName)
	if err != nil {
		return p, err
	}
	skey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	der, err := serverLeaf(root, rootKey, &skey.PublicKey, id, time.Now())
	if err != nil {
		return p, err
	}
	if err := writeCertAndKey(p.serverCert, p.serverKey, [][]byte{der}, skey); err != nil {
		return p, err
	}
	return p, nil
}

// serverLeaf signs a leaf with the SVID profile (docs/ca.md) for id, plus
// the DNS name nginxServerName.
func serverLeaf(root *x509.Certificate, rootKey crypto.Signer, pub crypto.PublicKey, id spiffeid.ID, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(id.String())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
		DNSNames:              []string{nginxServerName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, pub, rootKey)
	if err != nil {
		return nil, fmt.Errorf("sign nginx server certificate: %w", err)
	}
	return der, nil
}

// findRootKey returns the key of root among the root-<n>-key.pem files of
// a self-signed Authority's state directory.
func findRootKey(caDir string, root *x509.Certificate) (crypto.Signer, error) {
	files, err := filepath.Glob(filepath.Join(caDir, "root-*-key.pem"))
	if err != nil {
		return nil, err
	}
	want, err := x509.MarshalPKIXPublicKey(root.PublicKey)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("%s: not a PKCS#8 PEM key", f)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			continue
		}
		got, err := x509.MarshalPKIXPublicKey(s.Public())
		if err == nil && bytes.Equal(got, want) {
			return s, nil
		}
	}
	return nil, errors.New("no key of the active root in the CA state directory " + caDir)
}

func newKeyAndCSR() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, csr, nil
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeCertAndKey writes a chain (leaf first) and its key as PEM.
func writeCertAndKey(certFile, keyFile string, chain [][]byte, key *ecdsa.PrivateKey) error {
	var b bytes.Buffer
	for _, der := range chain {
		b.Write(certPEM(der))
	}
	if err := os.WriteFile(certFile, b.Bytes(), 0o644); err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
