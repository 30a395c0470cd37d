package guardrail

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// This file is the guardrail's only certificate code: a self-signed CA and
// one serving certificate. It stays small so that it can be swapped for
// Rampart's CA package once that exists.

// The files of a certificate directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "tls.crt"
	KeyFile    = "tls.key"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	// renewBefore is how close to expiry a serving certificate is replaced
	// instead of reused.
	renewBefore = 30 * 24 * time.Hour
)

// Certs describes a certificate directory after EnsureCerts.
type Certs struct {
	Dir      string
	CABundle []byte   // the CA certificate (PEM), the webhook's caBundle
	Written  []string // files this call wrote; none when everything was reused
}

// CertPath and KeyPath return the serving certificate and key files.
func (c Certs) CertPath() string { return filepath.Join(c.Dir, CertFile) }

// KeyPath returns the serving key file.
func (c Certs) KeyPath() string { return filepath.Join(c.Dir, KeyFile) }

// EnsureCerts makes dir hold an ECDSA P-256 CA (ca.crt, ca.key) and a
// serving certificate it signed (tls.crt, tls.key) valid for hosts (DNS
// names or IP addresses). Files that are there are reused: the CA always
// (a new CA would invalidate the caBundle of an installed webhook), the
// serving certificate when the CA signed it, it covers every host and it
// is valid for at least 30 more days. Key files are written, and kept,
// with mode 0600.
func EnsureCerts(dir string, hosts []string, now time.Time) (Certs, error) {
	if len(hosts) == 0 {
		return Certs{}, errors.New("certificates: no host names to certify")
	}
	c := Certs{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return c, fmt.Errorf("certificates: %w", err)
	}
	path := func(name string) string { return filepath.Join(dir, name) }

	ca, caKey, err := loadPair(path(CACertFile), path(CAKeyFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ca, caKey, err = newCert(nil, nil, now, []string{"rampart-guardrail-ca"})
		if err == nil {
			err = c.write(dir, CACertFile, CAKeyFile, ca, caKey)
		}
		if err != nil {
			return c, err
		}
	case err != nil:
		return c, err
	case !ca.IsCA || now.After(ca.NotAfter):
		return c, fmt.Errorf("certificates: %s is not a valid CA certificate (CA: %v, expires %s); remove %s and %s to create a new CA",
			path(CACertFile), ca.IsCA, ca.NotAfter.Format(time.DateOnly), CACertFile, CAKeyFile)
	}
	c.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})

	leaf, _, err := loadPair(path(CertFile), path(KeyFile))
	if err == nil && leaf.CheckSignatureFrom(ca) == nil && covers(leaf, hosts) && now.Add(renewBefore).Before(leaf.NotAfter) {
		return c, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return c, err
	}
	leaf, key, err := newCert(ca, caKey, now, hosts)
	if err == nil {
		err = c.write(dir, CertFile, KeyFile, leaf, key)
	}
	return c, err
}

// covers reports whether cert is valid for every host.
func covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// newCert creates a key and a certificate: a self-signed CA when parent is
// nil, else a serving certificate for hosts signed by parent.
func newCert(parent *x509.Certificate, parentKey crypto.Signer, now time.Time, hosts []string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certificates: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("certificates: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0], Organization: []string{"Rampart"}},
		NotBefore:             now.Add(-5 * time.Minute), // tolerate clock skew
		BasicConstraintsValid: true,
	}
	if parent == nil {
		tmpl.NotAfter = now.Add(caValidity)
		tmpl.IsCA, tmpl.MaxPathLenZero = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.NotAfter = now.Add(certValidity)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certificates: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("certificates: %w", err)
	}
	return cert, key, nil
}

// loadPair reads a certificate and its key. It returns fs.ErrNotExist when
// neither file exists, and an error when only one does, when either does
// not parse or when they do not belong together.
func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case errors.Is(cerr, fs.ErrNotExist) && errors.Is(kerr, fs.ErrNotExist):
		return nil, nil, fs.ErrNotExist
	case cerr != nil:
		// %v, not %w: half a pair must not read as "absent" to the
		// caller, which would then write over the remaining file.
		return nil, nil, fmt.Errorf("certificates: %v (the key %s exists; remove it or restore the certificate)", cerr, keyPath)
	case kerr != nil:
		return nil, nil, fmt.Errorf("certificates: %v (the certificate %s exists; remove it or restore the key)", kerr, certPath)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certificates: %s: no PEM CERTIFICATE block", certPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certificates: %s: %w", certPath, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("certificates: %s: no PEM block", keyPath)
	}
	var parsed any
	switch kb.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		err = fmt.Errorf("PEM block %q, want PRIVATE KEY", kb.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("certificates: %s: %w", keyPath, err)
	}
	key, ok := parsed.(crypto.Signer)
	pub, _ := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || pub == nil || !pub.Equal(key.Public()) {
		return nil, nil, fmt.Errorf("certificates: %s is not the key of %s", keyPath, certPath)
	}
	// A key file left readable by others is tightened, not trusted as is.
	if err := os.Chmod(keyPath, 0o600); err != nil {
		return nil, nil, fmt.Errorf("certificates: %w", err)
	}
	return cert, key, nil
}

// write stores a certificate (0644) and its key (0600), each through a
// temporary file renamed into place, so that a reader never sees half a
// file and the key is never readable by others, not even briefly.
func (c *Certs) write(dir, certName, keyName string, cert *x509.Certificate, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
		data []byte
	}{
		{keyName, 0o600, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
		{certName, 0o644, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})},
	} {
		tmp, err := os.CreateTemp(dir, "."+f.name+".*")
		if err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
		// CreateTemp makes the file 0600; a certificate is then widened.
		_, err = tmp.Write(f.data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), f.mode)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(dir, f.name))
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("certificates: write %s: %w", f.name, err)
		}
		c.Written = append(c.Written, filepath.Join(dir, f.name))
	}
	return nil
}
