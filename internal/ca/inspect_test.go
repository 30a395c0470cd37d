package ca_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
)

func TestFingerprint(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	root := a.Bundle()[0]
	sum := sha256.Sum256(root.Raw)
	var want []string
	for _, b := range sum {
		want = append(want, fmt.Sprintf("%02X", b))
	}
	if got := ca.Fingerprint(root); got != strings.Join(want, ":") {
		t.Errorf("Fingerprint = %s, want %s", got, strings.Join(want, ":"))
	}
}

func TestDescribeLeaf(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	web := issue(t, a, clock, "default", "web")
	got := ca.DescribeLeaf(web.cert.Leaf)
	want := ca.LeafInfo{
		ID:          "spiffe://cluster.local/ns/default/sa/web",
		Principal:   "cluster.local/ns/default/sa/web",
		Subject:     "",
		Issuer:      "CN=Rampart root CA 1,O=cluster.local",
		Serial:      web.cert.Leaf.SerialNumber.Text(16),
		NotBefore:   t0.Add(-5 * time.Minute),
		NotAfter:    t0.Add(24 * time.Hour),
		SHA256:      ca.Fingerprint(web.cert.Leaf),
		PublicKey:   "ECDSA P-256",
		KeyUsage:    []string{"digitalSignature", "keyAgreement"},
		ExtKeyUsage: []string{"serverAuth", "clientAuth"},
		URIs:        []string{"spiffe://cluster.local/ns/default/sa/web"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DescribeLeaf =\n  %+v\nwant\n  %+v", got, want)
	}

	// A root is described too, with what keeps it from being an SVID.
	root := ca.DescribeLeaf(a.Bundle()[0])
	if root.Problem != "leaf is a CA certificate (basicConstraints CA:true)" {
		t.Errorf("a root described as a leaf has no problem: %+v", root)
	}
	if !root.IsCA || !reflect.DeepEqual(root.KeyUsage, []string{"keyCertSign", "cRLSign"}) {
		t.Errorf("root described as %+v", root)
	}
	noURI := newTestCA(t, "x", nil, t0, t0.Add(time.Hour)).sign(t, leafTemplate(t0, "https://example.com"), newP256(t))
	if p := ca.DescribeLeaf(noURI).Problem; p != `URI SAN "https://example.com" is not a SPIFFE ID: scheme is missing or invalid` {
		t.Errorf("problem %q", p)
	}
}

func TestInspect(t *testing.T) {
	clock := newFakeClock(t0)
	a, dir := mustOpen(t, ca.Options{Clock: clock})
	issue(t, a, clock, "default", "web")
	if _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.json")
	before, _ := os.ReadFile(state)
	// Later than the switch: Inspect computes the phase at its own time,
	// like the owner would, without writing it down.
	clock.Advance(26 * time.Hour)
	got, err := ca.Inspect(dir, ca.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(state)
	if string(before) != string(after) {
		t.Error("Inspect changed state.json")
	}
	if want := a.Status(); !reflect.DeepEqual(got, want) {
		t.Errorf("Inspect =\n  %+v\nthe owner's Status =\n  %+v", got, want)
	}
	if got.Phase != ca.RotationStable || !samePhases(phases(got), ca.PhaseRetired, ca.PhaseActive) {
		t.Errorf("inspected phases %s %v", got.Phase, phases(got))
	}

	// The status is meant for `rampart cert list -o json`.
	data, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"mode":"self-signed"`, `"trustDomain":"cluster.local"`, `"phase":"stable"`, `"sha256":"`, `"phase":"retired"`, `"phaseUntil":"`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON status lacks %s: %s", key, data)
		}
	}

	if _, err := ca.Inspect(filepath.Join(t.TempDir(), "none"), ca.Options{}); err == nil || !strings.Contains(err.Error(), "ca: read state: open ") {
		t.Errorf("Inspect of a missing directory: %v", err)
	}
}
