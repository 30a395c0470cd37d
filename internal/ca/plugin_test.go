package ca_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/rampartsec/rampart/internal/ca"
)

func pemCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func pemECKey(t *testing.T, c *testCA) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// pluginLayout is the four files of Istio's plug-in CA, made in the test:
// a root, an intermediate that signs, the intermediate's key, and the chain
// from the intermediate to the root.
type pluginLayout struct {
	root, inter *testCA
	files       map[string][]byte
}

func newPluginLayout(t *testing.T, interNotAfter time.Time) *pluginLayout {
	t.Helper()
	root := newTestCA(t, "Plug Root", nil, t0.Add(-24*time.Hour), t0.Add(10*365*24*time.Hour))
	inter := newTestCA(t, "Plug Intermediate", root, t0.Add(-24*time.Hour), interNotAfter)
	return &pluginLayout{root: root, inter: inter, files: map[string][]byte{
		"ca-cert.pem":    pemCerts(inter.cert),
		"ca-key.pem":     pemECKey(t, inter),
		"root-cert.pem":  pemCerts(root.cert),
		"cert-chain.pem": pemCerts(inter.cert, root.cert),
	}}
}

func (p *pluginLayout) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range p.files {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPluginCA(t *testing.T) {
	clock := newFakeClock(t0)
	p := newPluginLayout(t, t0.Add(365*24*time.Hour))
	pluginDir := p.write(t)
	a, stateDir := mustOpen(t, ca.Options{Clock: clock, PluginDir: pluginDir})

	web := issue(t, a, clock, "default", "web")
	api := issue(t, a, clock, "default", "api")
	chain := web.cert.Certificate
	if len(chain) != 2 || string(chain[1]) != string(p.inter.cert.Raw) {
		t.Fatalf("chain of %d certificates, want the leaf and ca-cert.pem (the root stays out)", len(chain))
	}
	// The leaf verifies up to root-cert.pem through the intermediate.
	roots, err := ca.ParseCertificatesPEM(p.files["root-cert.pem"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := web.cert.Leaf.Verify(x509.VerifyOptions{
		Roots:         certPool(roots...),
		Intermediates: certPool(p.inter.cert),
		CurrentTime:   t0,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("leaf does not verify to root-cert.pem: %v", err)
	}
	if _, _, err := x509svid.ParseAndVerify(chain, x509bundle.FromX509Authorities(td, roots), x509svid.WithTime(t0)); err != nil {
		t.Errorf("go-spiffe verification: %v", err)
	}
	if b := a.Bundle(); len(b) != 1 || string(b[0].Raw) != string(p.root.cert.Raw) {
		t.Error("bundle is not root-cert.pem")
	}
	allPairsConnect(t, "plug-in", map[string]*svid{"web": web, "api": api})

	st := a.Status()
	if st.Mode != ca.ModePlugin || st.PluginDir != pluginDir || st.TrustDomain != "cluster.local" || !samePhases(phases(st), ca.PhaseActive) {
		t.Errorf("status %+v", st)
	}
	for _, step := range []struct {
		name string
		run  func() (ca.Status, error)
	}{
		{"rotate", a.Rotate},
		{"promote", a.Promote},
		{"finish rotation", a.FinishRotation},
	} {
		want := "ca: " + step.name + ": the plug-in CA is rotated by replacing its files"
		if _, err := step.run(); err == nil || err.Error() != want || !errors.Is(err, ca.ErrPluginManaged) {
			t.Errorf("%s on a plug-in CA: %v, want %q", step.name, err, want)
		}
	}
	// The state directory exists, private, and the CA writes nothing in
	// it: the operator's files are the state.
	if entries, err := os.ReadDir(stateDir); err != nil || len(entries) != 0 {
		t.Errorf("state directory of a plug-in CA: %v, %v", entries, err)
	}
}

func TestPluginCALeafEndsWithIntermediate(t *testing.T) {
	clock := newFakeClock(t0)
	p := newPluginLayout(t, t0.Add(2*time.Hour))
	a, _ := mustOpen(t, ca.Options{Clock: clock, PluginDir: p.write(t)})
	web := issue(t, a, clock, "default", "web")
	if !web.cert.Leaf.NotAfter.Equal(p.inter.cert.NotAfter) {
		t.Errorf("NotAfter %v, want the intermediate's %v", web.cert.Leaf.NotAfter, p.inter.cert.NotAfter)
	}
}

func TestPluginCAVariants(t *testing.T) {
	t.Run("chain without the root, two roots", func(t *testing.T) {
		clock := newFakeClock(t0)
		p := newPluginLayout(t, t0.Add(24*time.Hour))
		next := newTestCA(t, "Next Root", nil, t0.Add(-time.Hour), t0.Add(24*time.Hour))
		p.files["cert-chain.pem"] = pemCerts(p.inter.cert)
		p.files["root-cert.pem"] = pemCerts(next.cert, p.root.cert)
		a, _ := mustOpen(t, ca.Options{Clock: clock, PluginDir: p.write(t)})
		if len(a.Bundle()) != 2 {
			t.Errorf("bundle of %d roots, want both of root-cert.pem", len(a.Bundle()))
		}
		if got := phases(a.Status()); !samePhases(got, ca.PhaseTrusted, ca.PhaseActive) {
			t.Errorf("root phases %v, want the chain's root active and the other trusted", got)
		}
		if web := issue(t, a, clock, "default", "web"); len(web.cert.Certificate) != 2 {
			t.Errorf("chain of %d, want leaf and intermediate", len(web.cert.Certificate))
		}
	})
	t.Run("RSA intermediate with a PKCS#1 key", func(t *testing.T) {
		clock := newFakeClock(t0)
		p := newPluginLayout(t, t0.Add(24*time.Hour))
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "RSA Intermediate"},
			NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root.cert, &key.PublicKey, p.root.key)
		if err != nil {
			t.Fatal(err)
		}
		inter, _ := x509.ParseCertificate(der)
		p.files["ca-cert.pem"] = pemCerts(inter)
		p.files["ca-key.pem"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		p.files["cert-chain.pem"] = pemCerts(inter, p.root.cert)
		a, _ := mustOpen(t, ca.Options{Clock: clock, PluginDir: p.write(t)})
		web := issue(t, a, clock, "default", "web")
		if web.cert.Leaf.SignatureAlgorithm != x509.SHA256WithRSA {
			t.Errorf("leaf signed with %v, want SHA256-RSA", web.cert.Leaf.SignatureAlgorithm)
		}
		allPairsConnect(t, "RSA plug-in", map[string]*svid{"web": web})
	})
}

func TestPluginCAErrors(t *testing.T) {
	p := newPluginLayout(t, t0.Add(365*24*time.Hour))
	otherRoot := newTestCA(t, "Other Root", nil, t0.Add(-time.Hour), t0.Add(24*time.Hour))
	otherInter := newTestCA(t, "Other Intermediate", otherRoot, t0.Add(-time.Hour), t0.Add(24*time.Hour))
	expired := newTestCA(t, "Old Intermediate", p.root, t0.Add(-48*time.Hour), t0.Add(-time.Hour))
	leafKey := newP256(t)
	notCA := p.root.sign(t, leafTemplate(t0, "spiffe://cluster.local/ns/default/sa/web"), leafKey)

	tests := []struct {
		name    string
		edit    map[string][]byte // replaced files; a nil value deletes the file
		wantErr string            // DIR stands for the plug-in directory
	}{
		{
			name:    "key file missing",
			edit:    map[string][]byte{"ca-key.pem": nil},
			wantErr: "ca: plug-in DIR/ca-key.pem: open DIR/ca-key.pem: no such file or directory",
		},
		{
			name:    "key of another certificate",
			edit:    map[string][]byte{"ca-key.pem": pemECKey(t, otherInter)},
			wantErr: "ca: plug-in DIR/ca-key.pem: key does not match the certificate in ca-cert.pem",
		},
		{
			name:    "key file holds a certificate",
			edit:    map[string][]byte{"ca-key.pem": pemCerts(p.inter.cert)},
			wantErr: `ca: plug-in DIR/ca-key.pem: PEM block is "CERTIFICATE", want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY`,
		},
		{
			name:    "signing certificate is not a CA",
			edit:    map[string][]byte{"ca-cert.pem": pemCerts(notCA)},
			wantErr: "ca: plug-in DIR/ca-cert.pem: not a CA certificate (basicConstraints CA:true missing)",
		},
		{
			name:    "signing certificate with its chain",
			edit:    map[string][]byte{"ca-cert.pem": pemCerts(p.inter.cert, p.root.cert)},
			wantErr: "ca: plug-in DIR/ca-cert.pem: 2 certificates, want 1 (intermediates belong in cert-chain.pem)",
		},
		{
			name:    "signing certificate expired",
			edit:    map[string][]byte{"ca-cert.pem": pemCerts(expired.cert), "ca-key.pem": pemECKey(t, expired), "cert-chain.pem": pemCerts(expired.cert, p.root.cert)},
			wantErr: "ca: plug-in DIR/ca-cert.pem: expired at 2030-01-01T11:00:00Z",
		},
		{
			name:    "chain starts elsewhere",
			edit:    map[string][]byte{"cert-chain.pem": pemCerts(p.root.cert)},
			wantErr: "ca: plug-in DIR/cert-chain.pem: first certificate (CN=Plug Root) is not the one in ca-cert.pem (CN=Plug Intermediate)",
		},
		{
			name:    "chain out of order",
			edit:    map[string][]byte{"cert-chain.pem": pemCerts(p.inter.cert, otherRoot.cert)},
			wantErr: "ca: plug-in DIR/cert-chain.pem: certificate 1 (CN=Plug Intermediate) is not signed by certificate 2 (CN=Other Root): ",
		},
		{
			name:    "root of another CA",
			edit:    map[string][]byte{"root-cert.pem": pemCerts(otherRoot.cert)},
			wantErr: "ca: plug-in DIR/root-cert.pem: no certificate in it is, or signed, the last certificate of cert-chain.pem (CN=Plug Root, issued by CN=Plug Root)",
		},
		{
			name:    "root file not PEM",
			edit:    map[string][]byte{"root-cert.pem": []byte("-----BEGIN GARBAGE")},
			wantErr: "ca: plug-in DIR/root-cert.pem: data after certificate 0 is not a PEM block",
		},
		{
			name:    "root file empty",
			edit:    map[string][]byte{"root-cert.pem": {}},
			wantErr: "ca: plug-in DIR/root-cert.pem: no PEM certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &pluginLayout{files: map[string][]byte{}}
			for k, v := range p.files {
				q.files[k] = v
			}
			for k, v := range tt.edit {
				q.files[k] = v
			}
			dir := q.write(t)
			_, err := ca.Open(filepath.Join(t.TempDir(), "state"), ca.Options{Clock: newFakeClock(t0), PluginDir: dir})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n  %v\nwant it to start with\n  %s", err, want)
			}
			var pe *ca.PluginError
			if !errors.Is(err, ca.ErrPlugin) || !errors.As(err, &pe) || !strings.HasPrefix(pe.File, dir) {
				t.Errorf("not a *PluginError naming a file of %s: %#v", dir, err)
			}
		})
	}
}

func certPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
