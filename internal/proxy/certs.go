package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Certificates supplies the TLS configurations of the HBONE tunnels. The CA
// package implements it: it owns the workloads' keys, certificates and
// trust bundles and rotates them, typically through GetCertificate and
// VerifyPeerCertificate callbacks inside the configs it returns, so the
// proxy never caches a certificate itself and asks once per connection.
//
// The proxy adds what HBONE needs on a clone of each config (TLS 1.3 only,
// ALPN "h2") and refuses configs that would not authenticate the peer: a
// server config must require and verify client certificates
// (tls.RequireAndVerifyClientCert, or tls.RequireAnyClientCert with a
// VerifyPeerCertificate or VerifyConnection hook), and a client config that
// skips the standard verification must carry such a hook. SPIFFE
// certificates have no DNS names, so the hook is the usual way.
type Certificates interface {
	// ServerConfig returns the configuration with which w's inbound HBONE
	// listener answers a handshake.
	ServerConfig(w Workload) (*tls.Config, error)
	// ClientConfig returns the configuration with which src opens a tunnel
	// to dst; its verification should check that the server is dst.
	ClientConfig(src, dst Workload) (*tls.Config, error)
}

// alpnHBONE is the only application protocol of the tunnel: HTTP/2.
const alpnHBONE = "h2"

// serverTLS returns a hardened clone of the server config for w.
func serverTLS(certs Certificates, w Workload) (*tls.Config, error) {
	cfg, err := certs.ServerConfig(w)
	if err != nil {
		return nil, fmt.Errorf("server tls config for %s: %w", w.Key(), err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("server tls config for %s: %w", w.Key(), errNoConfig)
	}
	c := hardenServer(cfg)
	if err := checkServer(c); err != nil {
		return nil, fmt.Errorf("server tls config for %s: %w", w.Key(), err)
	}
	if inner := c.GetConfigForClient; inner != nil {
		// A per-handshake config replaces this one entirely, so it gets
		// the same hardening and the same check.
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			cc, err := inner(hello)
			if err != nil || cc == nil {
				return cc, err
			}
			cc = hardenServer(cc)
			if err := checkServer(cc); err != nil {
				return nil, err
			}
			return cc, nil
		}
	}
	return c, nil
}

func hardenServer(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = []string{alpnHBONE}
	// Full-size records from the first byte: each HBONE frame is one
	// record and one write (hbone), instead of small records while the
	// connection warms up.
	c.DynamicRecordSizingDisabled = true
	return c
}

func checkServer(c *tls.Config) error {
	switch {
	case c.ClientAuth == tls.RequireAndVerifyClientCert:
		return nil
	case c.ClientAuth == tls.RequireAnyClientCert && (c.VerifyPeerCertificate != nil || c.VerifyConnection != nil):
		return nil
	}
	return fmt.Errorf("%w: the server does not require and verify client certificates", ErrInsecureTLS)
}

// clientTLS returns a hardened clone of the client config for src to dst.
func clientTLS(certs Certificates, src, dst Workload) (*tls.Config, error) {
	cfg, err := certs.ClientConfig(src, dst)
	if err != nil {
		return nil, fmt.Errorf("client tls config for %s to %s: %w", src.Key(), dst.Key(), err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("client tls config for %s to %s: %w", src.Key(), dst.Key(), errNoConfig)
	}
	c := cfg.Clone()
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = []string{alpnHBONE}
	// Full-size records from the first byte: each HBONE frame is one
	// record and one write (hbone), instead of small records while the
	// connection warms up.
	c.DynamicRecordSizingDisabled = true
	if c.InsecureSkipVerify && c.VerifyPeerCertificate == nil && c.VerifyConnection == nil {
		return nil, fmt.Errorf("client tls config for %s to %s: %w: verification is skipped and no hook replaces it", src.Key(), dst.Key(), ErrInsecureTLS)
	}
	if len(c.Certificates) == 0 && c.GetClientCertificate == nil {
		return nil, fmt.Errorf("client tls config for %s to %s: %w", src.Key(), dst.Key(), errNoClientCert)
	}
	return c, nil
}

var (
	errNoConfig     = errors.New("no tls config")
	errNoClientCert = errors.New("no client certificate")
)

// principalOf returns the SPIFFE ID of a verified peer certificate: its
// only URI SAN, which must use the spiffe scheme. A certificate with none
// or several gives an error, so the peer has no principal and is denied.
func principalOf(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no peer certificate")
	}
	if len(cert.URIs) != 1 {
		return "", fmt.Errorf("peer certificate has %d URI SANs, want exactly one SPIFFE ID", len(cert.URIs))
	}
	u := cert.URIs[0]
	if u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("peer certificate URI SAN %q is not a SPIFFE ID", u.String())
	}
	return u.String(), nil
}
