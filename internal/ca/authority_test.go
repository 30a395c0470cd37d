package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/rampartsec/rampart/internal/ca"
)

func TestOpenCreatesRootAndReloadsIt(t *testing.T) {
	clock := newFakeClock(t0)
	a, dir := mustOpen(t, ca.Options{Clock: clock})
	roots := a.Bundle()
	if len(roots) != 1 {
		t.Fatalf("bundle has %d roots, want 1", len(roots))
	}
	root := roots[0]
	if !root.IsCA || !root.BasicConstraintsValid {
		t.Error("root is not a CA")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if root.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("root signature %v, want ECDSA-SHA256", root.SignatureAlgorithm)
	}
	if got, want := root.NotAfter, t0.Add(ca.DefaultRootTTL); !got.Equal(want) {
		t.Errorf("root NotAfter %v, want %v (ten years)", got, want)
	}
	if len(root.URIs) != 1 || root.URIs[0].String() != "spiffe://cluster.local" {
		t.Errorf("root URIs %v, want [spiffe://cluster.local]", root.URIs)
	}
	if root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("root key usage %v, want keyCertSign|cRLSign", root.KeyUsage)
	}
	leaf := issue(t, a, clock, "default", "web")

	b, err := ca.Open(dir, ca.Options{Clock: clock})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	again := b.Bundle()
	if len(again) != 1 || !bytes.Equal(again[0].Raw, root.Raw) {
		t.Fatal("reopened authority has another root")
	}
	// The reopened authority signs with the same root: a leaf from before
	// and one from after verify against one bundle.
	later := issue(t, b, clock, "default", "api")
	bundle, _ := b.GetX509BundleForTrustDomain(td)
	for _, s := range []*svid{leaf, later} {
		if _, _, err := x509svid.Verify([]*x509.Certificate{s.cert.Leaf}, bundle, x509svid.WithTime(t0)); err != nil {
			t.Errorf("leaf does not verify after reopen: %v", err)
		}
	}
	if _, err := b.GetX509BundleForTrustDomain(spiffeidTD(t, "other.example")); err == nil {
		t.Error("bundle for a foreign trust domain: no error")
	}
}

func TestFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix file modes")
	}
	clock := newFakeClock(t0)
	dir := filepath.Join(t.TempDir(), "ca")
	// A directory that exists with a wider mode is narrowed.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Open(dir, ca.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	issue(t, a, clock, "default", "web")  // writes state.json again
	if _, err := a.Rotate(); err != nil { // writes a second root
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		".":              0o700,
		"state.json":     0o600,
		"root-1.pem":     0o644,
		"root-1-key.pem": 0o600,
		"root-2.pem":     0o644,
		"root-2-key.pem": 0o600,
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want)-1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want exactly the files %v", names, want)
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s: mode %v, want %v", name, got, mode)
		}
	}
}

func TestOpenRemovesInterruptedWrites(t *testing.T) {
	clock := newFakeClock(t0)
	_, dir := mustOpen(t, ca.Options{Clock: clock})
	stale := filepath.Join(dir, ".tmp-state.json-123")
	if err := os.WriteFile(stale, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Open(dir, ca.Options{Clock: clock}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temporary file still there (stat: %v)", err)
	}
}

func TestOpenErrors(t *testing.T) {
	otherKey := func(t *testing.T, dir string) {
		k := newP256(t)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		writePEM(t, filepath.Join(dir, "root-1-key.pem"), "PRIVATE KEY", der)
	}
	tests := []struct {
		name    string
		opts    ca.Options
		break_  func(t *testing.T, dir string)
		wantErr string // substring; the directory is written as DIR
		wantIs  error
	}{
		{
			name:    "trust domain changed",
			opts:    ca.Options{TrustDomain: "other.example"},
			wantErr: `ca: state DIR/state.json: trust domain "cluster.local", but the options ask for "other.example": a state directory serves one trust domain`,
			wantIs:  ca.ErrState,
		},
		{
			name:    "state not JSON",
			break_:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "state.json"), "{") },
			wantErr: "ca: state DIR/state.json: unexpected EOF",
			wantIs:  ca.ErrState,
		},
		{
			name:    "unknown field in state",
			break_:  func(t *testing.T, dir string) { editState(t, dir, `"version": 1`, `"version": 1, "extra": true`) },
			wantErr: `ca: state DIR/state.json: json: unknown field "extra"`,
			wantIs:  ca.ErrState,
		},
		{
			name:    "future state version",
			break_:  func(t *testing.T, dir string) { editState(t, dir, `"version": 1`, `"version": 2`) },
			wantErr: "ca: state DIR/state.json: version 2, want 1",
			wantIs:  ca.ErrState,
		},
		{
			name:    "root name escapes the directory",
			break_:  func(t *testing.T, dir string) { editState(t, dir, `"name": "root-1"`, `"name": "../root-1"`) },
			wantErr: `ca: state DIR/state.json: root 1: name "../root-1" is not root-<n>`,
			wantIs:  ca.ErrState,
		},
		{
			name:    "key does not match certificate",
			break_:  otherKey,
			wantErr: "ca: state DIR/root-1-key.pem: key does not match the certificate in root-1.pem",
			wantIs:  ca.ErrState,
		},
		{
			name:    "certificate missing",
			break_:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "root-1.pem")) },
			wantErr: "ca: state DIR/state.json: root root-1: open DIR/root-1.pem: no such file or directory",
			wantIs:  ca.ErrState,
		},
		{
			name:    "key missing",
			break_:  func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "root-1-key.pem")) },
			wantErr: "ca: state DIR/state.json: root root-1: open DIR/root-1-key.pem: no such file or directory",
			wantIs:  ca.ErrState,
		},
		{
			name:    "certificate is not PEM",
			break_:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "root-1.pem"), "hello") },
			wantErr: "ca: state DIR/root-1.pem: data after certificate 0 is not a PEM block",
			wantIs:  ca.ErrState,
		},
		{
			name:    "workload TTL above maximum",
			opts:    ca.Options{WorkloadTTL: 48 * time.Hour, MaxWorkloadTTL: 24 * time.Hour},
			wantErr: "ca: options: WorkloadTTL 48h0m0s exceeds MaxWorkloadTTL 24h0m0s",
			wantIs:  ca.ErrInvalidTTL,
		},
		{
			name:    "malformed trust domain",
			opts:    ca.Options{TrustDomain: "Bad Domain"},
			wantErr: `ca: trust domain "Bad Domain": trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`,
			wantIs:  ca.ErrInvalidIdentity,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(t0)
			_, dir := mustOpen(t, ca.Options{Clock: clock})
			if tt.break_ != nil {
				tt.break_(t, dir)
			}
			opts := tt.opts
			opts.Clock = clock
			_, err := ca.Open(dir, opts)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, want)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(err, %v) is false", tt.wantIs)
			}
		})
	}
}

func TestStatusOfNewAuthority(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	st := a.Status()
	if st.Mode != ca.ModeSelfSigned || st.TrustDomain != "cluster.local" || st.Phase != ca.RotationStable {
		t.Errorf("status %+v, want self-signed, cluster.local, stable", st)
	}
	if len(st.Roots) != 1 {
		t.Fatalf("%d roots, want 1", len(st.Roots))
	}
	r := st.Roots[0]
	if r.Phase != ca.PhaseActive || !r.PhaseUntil.IsZero() {
		t.Errorf("root phase %s until %v, want active with nothing scheduled", r.Phase, r.PhaseUntil)
	}
	if r.Subject != "CN=Rampart root CA 1,O=cluster.local" {
		t.Errorf("root subject %q", r.Subject)
	}
	if r.Certificate == nil || r.SHA256 != ca.Fingerprint(r.Certificate) || r.Serial != r.Certificate.SerialNumber.Text(16) {
		t.Errorf("root info does not describe its certificate: %+v", r)
	}
}

// TestOpenIgnoresUnrecordedRoot stands for a crash during Rotate after the
// new root's files were written but before state.json named them: the
// files are not part of the CA, and the next Rotate replaces them.
func TestOpenIgnoresUnrecordedRoot(t *testing.T) {
	clock := newFakeClock(t0)
	_, dir := mustOpen(t, ca.Options{Clock: clock})
	writeFile(t, filepath.Join(dir, "root-2.pem"), "half-written")
	writeFile(t, filepath.Join(dir, "root-2-key.pem"), "half-written")
	a, err := ca.Open(dir, ca.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Status().Roots) != 1 {
		t.Fatalf("%d roots, want the recorded one", len(a.Status().Roots))
	}
	st, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Roots) != 2 || st.Roots[1].Subject != "CN=Rampart root CA 2,O=cluster.local" {
		t.Fatalf("after Rotate: %+v", st.Roots)
	}
	if _, err := ca.Open(dir, ca.Options{Clock: clock}); err != nil {
		t.Errorf("reopen after replacing the leftovers: %v", err)
	}
}
