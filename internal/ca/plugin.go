package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The files of Istio's plug-in CA layout (the "cacerts" secret).
const (
	// PluginCACert holds the signing certificate: an intermediate CA.
	PluginCACert = "ca-cert.pem"
	// PluginCAKey holds the signing certificate's private key.
	PluginCAKey = "ca-key.pem"
	// PluginRootCert holds the root, or roots, that workloads trust.
	PluginRootCert = "root-cert.pem"
	// PluginCertChain holds the chain from the signing certificate up to
	// the root: ca-cert.pem first, then any intermediates, then optionally
	// the root.
	PluginCertChain = "cert-chain.pem"
)

// pluginCA is the backend of a CA whose signing certificate is an
// operator's intermediate. It never writes: the operator owns the files.
type pluginCA struct {
	dir    string
	sca    *signingCA
	roots  []*x509.Certificate // root-cert.pem, all trusted
	anchor *x509.Certificate   // the root the signing chain ends at
}

// loadPlugin reads and cross-checks the four files of dir. Every error
// names the file that is wrong, or the one that does not match the others.
func loadPlugin(dir string, now time.Time) (*pluginCA, error) {
	path := func(name string) string { return filepath.Join(dir, name) }
	readCerts := func(name string) ([]*x509.Certificate, error) {
		data, err := os.ReadFile(path(name))
		if err != nil {
			return nil, &PluginError{File: path(name), Err: err}
		}
		certs, err := ParseCertificatesPEM(data)
		if err != nil {
			return nil, &PluginError{File: path(name), Err: err}
		}
		return certs, nil
	}

	caCerts, err := readCerts(PluginCACert)
	if err != nil {
		return nil, err
	}
	if len(caCerts) != 1 {
		return nil, &PluginError{File: path(PluginCACert), Err: fmt.Errorf("%d certificates, want 1 (intermediates belong in %s)", len(caCerts), PluginCertChain)}
	}
	caCert := caCerts[0]
	if err := checkCA(caCert, now); err != nil {
		return nil, &PluginError{File: path(PluginCACert), Err: err}
	}

	keyPEM, err := os.ReadFile(path(PluginCAKey))
	if err != nil {
		return nil, &PluginError{File: path(PluginCAKey), Err: err}
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, &PluginError{File: path(PluginCAKey), Err: err}
	}
	if !keyMatches(key, caCert) {
		return nil, &PluginError{File: path(PluginCAKey), Err: fmt.Errorf("key does not match the certificate in %s", PluginCACert)}
	}

	roots, err := readCerts(PluginRootCert)
	if err != nil {
		return nil, err
	}
	for i, r := range roots {
		if err := checkCA(r, now); err != nil {
			return nil, &PluginError{File: path(PluginRootCert), Err: fmt.Errorf("certificate %d (%s): %w", i+1, r.Subject, err)}
		}
	}

	chain, err := readCerts(PluginCertChain)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(chain[0].Raw, caCert.Raw) {
		return nil, &PluginError{File: path(PluginCertChain), Err: fmt.Errorf("first certificate (%s) is not the one in %s (%s)", chain[0].Subject, PluginCACert, caCert.Subject)}
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, &PluginError{File: path(PluginCertChain), Err: fmt.Errorf("certificate %d (%s) is not signed by certificate %d (%s): %w", i+1, chain[i].Subject, i+2, chain[i+1].Subject, err)}
		}
	}
	// The chain sent to workloads stops below the root: peers have the
	// root in their bundle, and a root in the chain is only extra bytes.
	var intermediates []*x509.Certificate
	for _, c := range chain[1:] {
		if !containsCert(roots, c) {
			intermediates = append(intermediates, c)
		}
	}
	last := chain[len(chain)-1]
	var anchor *x509.Certificate
	for _, r := range roots {
		if bytes.Equal(r.Raw, last.Raw) || last.CheckSignatureFrom(r) == nil {
			anchor = r
			break
		}
	}
	if anchor == nil {
		return nil, &PluginError{File: path(PluginRootCert), Err: fmt.Errorf("no certificate in it is, or signed, the last certificate of %s (%s, issued by %s)", PluginCertChain, last.Subject, last.Issuer)}
	}
	// Let crypto/x509 have the last word on path length, validity and
	// other constraints along the chain.
	verified, err := caCert.Verify(x509.VerifyOptions{
		Roots:         certPool(roots),
		Intermediates: certPool(intermediates),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, &PluginError{File: path(PluginCertChain), Err: fmt.Errorf("%s does not verify up to %s: %w", PluginCACert, PluginRootCert, err)}
	}

	s := &signingCA{cert: caCert, key: key, notAfter: caCert.NotAfter, record: func(time.Time) error { return nil }}
	for _, c := range verified[0] {
		if c.NotAfter.Before(s.notAfter) {
			s.notAfter = c.NotAfter
		}
	}
	s.chain = append(s.chain, caCert.Raw)
	for _, c := range intermediates {
		s.chain = append(s.chain, c.Raw)
	}
	return &pluginCA{dir: dir, sca: s, roots: roots, anchor: anchor}, nil
}

// checkCA checks that cert may sign certificates and is valid at now.
func checkCA(cert *x509.Certificate, now time.Time) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA:
		return errors.New("not a CA certificate (basicConstraints CA:true missing)")
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return errors.New("key usage lacks keyCertSign")
	case now.After(cert.NotAfter):
		return fmt.Errorf("expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("not valid until %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}

func certPool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func (p *pluginCA) signer(time.Time) (*signingCA, error) { return p.sca, nil }

func (p *pluginCA) bundle(time.Time) []*x509.Certificate {
	return append([]*x509.Certificate(nil), p.roots...)
}

func (p *pluginCA) status(time.Time) Status {
	st := Status{Mode: ModePlugin, PluginDir: p.dir, Phase: RotationStable}
	for _, r := range p.roots {
		phase := PhaseTrusted
		if r == p.anchor {
			phase = PhaseActive
		}
		st.Roots = append(st.Roots, describeRoot(r, phase, time.Time{}))
	}
	return st
}
