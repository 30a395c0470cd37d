package proxy_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/proxy"
)

// certsFunc builds a Certificates from two functions.
type certsFunc struct {
	server func() (*tls.Config, error)
	client func() (*tls.Config, error)
}

func (c certsFunc) ServerConfig(proxy.Workload) (*tls.Config, error)      { return c.server() }
func (c certsFunc) ClientConfig(_, _ proxy.Workload) (*tls.Config, error) { return c.client() }

func TestTLSConfigsAreHardened(t *testing.T) {
	w := proxy.Workload{Namespace: "a", Name: "b", ServiceAccount: "c"}
	hook := func([][]byte, [][]*x509.Certificate) error { return nil }
	leaf := mustPKI(t, "r").leaf(t, "spiffe://cluster.local/ns/a/sa/c")
	for _, tc := range []struct {
		name    string
		cfg     *tls.Config
		err     error
		client  bool
		wantErr string
	}{
		{name: "server verifies", cfg: &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}},
		{name: "server with hook", cfg: &tls.Config{ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: hook}},
		{name: "server without client auth", cfg: &tls.Config{}, wantErr: "insecure tls config"},
		{name: "server requiring any certificate without a hook", cfg: &tls.Config{ClientAuth: tls.RequireAnyClientCert}, wantErr: "insecure tls config"},
		{name: "server verifying only if given", cfg: &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, VerifyPeerCertificate: hook}, wantErr: "insecure tls config"},
		{name: "server nil", wantErr: "no tls config"},
		{name: "server error", err: errors.New("not issued yet"), wantErr: "not issued yet"},
		{name: "client verifies", client: true, cfg: &tls.Config{Certificates: []tls.Certificate{leaf}}},
		{name: "client with hook", client: true, cfg: &tls.Config{Certificates: []tls.Certificate{leaf}, InsecureSkipVerify: true, VerifyPeerCertificate: hook}},
		{name: "client skipping verification", client: true, cfg: &tls.Config{Certificates: []tls.Certificate{leaf}, InsecureSkipVerify: true}, wantErr: "insecure tls config"},
		{name: "client without certificate", client: true, cfg: &tls.Config{}, wantErr: "no client certificate"},
		{name: "client nil", client: true, wantErr: "no tls config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get := func() (*tls.Config, error) { return tc.cfg, tc.err }
			certs := certsFunc{server: get, client: get}
			var (
				got *tls.Config
				err error
			)
			if tc.client {
				got, err = proxy.ClientTLS(certs, w, w)
			} else {
				got, err = proxy.ServerTLS(certs, w)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.MinVersion != tls.VersionTLS13 || len(got.NextProtos) != 1 || got.NextProtos[0] != "h2" {
				t.Errorf("not hardened: min version %x, ALPN %v", got.MinVersion, got.NextProtos)
			}
			if got == tc.cfg || tc.cfg.MinVersion == tls.VersionTLS13 {
				t.Error("the provider's config was modified instead of cloned")
			}
		})
	}
}

func TestPrincipalOf(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		uris    []*url.URL
		want    string
		wantErr string
	}{
		{"spiffe", []*url.URL{u("spiffe://cluster.local/ns/a/sa/b")}, "spiffe://cluster.local/ns/a/sa/b", ""},
		{"none", nil, "", "0 URI SANs"},
		{"two", []*url.URL{u("spiffe://td/a"), u("spiffe://td/b")}, "", "2 URI SANs"},
		{"https", []*url.URL{u("https://td/ns/a/sa/b")}, "", "not a SPIFFE ID"},
		{"no trust domain", []*url.URL{u("spiffe:///ns/a")}, "", "not a SPIFFE ID"},
		{"query", []*url.URL{u("spiffe://td/ns/a?x=1")}, "", "not a SPIFFE ID"},
		{"user info", []*url.URL{u("spiffe://u@td/ns/a")}, "", "not a SPIFFE ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := proxy.PrincipalOf(&x509.Certificate{URIs: tc.uris})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := proxy.PrincipalOf(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}
