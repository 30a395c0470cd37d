package guardrail_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/guardrail"
)

func mustCerts(t *testing.T, dir string, hosts []string, now time.Time) guardrail.Certs {
	t.Helper()
	c, err := guardrail.EnsureCerts(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEnsureCerts checks the certificate directory's life: created with
// private keys, reused as is, the serving certificate replaced when the
// names change or expiry nears, the CA kept throughout.
func TestEnsureCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Now()
	hosts := []string{"guardrail.rampart-system.svc", "127.0.0.1"}
	c := mustCerts(t, dir, hosts, now)
	if len(c.Written) != 4 {
		t.Fatalf("wrote %v, want 4 files", c.Written)
	}
	for name, mode := range map[string]os.FileMode{"ca.key": 0o600, "tls.key": 0o600, "ca.crt": 0o644, "tls.crt": 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", name, err, st.Mode().Perm(), mode)
		}
	}
	ca, leaf := readCert(t, filepath.Join(dir, "ca.crt")), readCert(t, c.CertPath())
	if !ca.IsCA || leaf.IsCA {
		t.Error("CA and leaf roles swapped")
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("leaf for %s: %v", h, err)
		}
	}
	if !bytes.Equal(c.CABundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})) {
		t.Error("CABundle is not ca.crt")
	}

	// Reused: nothing written, same bundle.
	if again := mustCerts(t, dir, hosts, now); len(again.Written) != 0 || !bytes.Equal(again.CABundle, c.CABundle) {
		t.Errorf("second run wrote %v", again.Written)
	}
	// A key file made readable by others is tightened.
	os.Chmod(filepath.Join(dir, "tls.key"), 0o644)
	mustCerts(t, dir, hosts, now)
	if st, _ := os.Stat(filepath.Join(dir, "tls.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode %v after reuse", st.Mode().Perm())
	}
	// New names: new serving certificate, same CA.
	more := mustCerts(t, dir, append(hosts, "guardrail.rampart-system.svc.cluster.local"), now)
	if len(more.Written) != 2 || !bytes.Equal(more.CABundle, c.CABundle) {
		t.Errorf("new host: wrote %v, CA changed %v", more.Written, !bytes.Equal(more.CABundle, c.CABundle))
	}
	// 30 days before expiry the serving certificate is renewed.
	later := mustCerts(t, dir, hosts, now.Add(340*24*time.Hour))
	if len(later.Written) != 2 || readCert(t, c.CertPath()).NotAfter.Before(now.Add(700*24*time.Hour)) {
		t.Errorf("near expiry: wrote %v", later.Written)
	}
}

func TestEnsureCertsRefusesBrokenDirectories(t *testing.T) {
	tests := []struct {
		name    string
		break_  func(dir string)
		wantErr string
	}{
		{"CA key without certificate", func(d string) { os.Remove(filepath.Join(d, "ca.crt")) }, "ca.key exists"},
		{"CA certificate without key", func(d string) { os.Remove(filepath.Join(d, "ca.key")) }, "ca.crt exists"},
		{"garbage certificate", func(d string) { os.WriteFile(filepath.Join(d, "ca.crt"), []byte("nope"), 0o644) }, "no PEM CERTIFICATE block"},
		{"key of another certificate", func(d string) {
			key, _ := os.ReadFile(filepath.Join(d, "tls.key"))
			os.WriteFile(filepath.Join(d, "ca.key"), key, 0o600)
		}, "is not the key of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustCerts(t, dir, []string{"127.0.0.1"}, time.Now())
			tt.break_(dir)
			_, err := guardrail.EnsureCerts(dir, []string{"127.0.0.1"}, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := guardrail.EnsureCerts(t.TempDir(), nil, time.Now()); err == nil {
		t.Error("no hosts accepted")
	}
}
