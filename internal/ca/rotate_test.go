package ca_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
)

// allPairsConnect runs a handshake between every ordered pair of workloads,
// each as client and as server, with each side verifying against its own
// bundle, and fails the test on any refusal.
func allPairsConnect(t *testing.T, phase string, live map[string]*svid) {
	t.Helper()
	names := make([]string, 0, len(live))
	for n := range live {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, c := range names {
		for _, s := range names {
			cerr, serr, _, _ := handshake(t, ca.ClientTLSConfig(live[c], nil), ca.ServerTLSConfig(live[s], nil))
			if cerr != nil || serr != nil {
				t.Errorf("%s: %s -> %s failed: client: %v; server: %v", phase, c, s, cerr, serr)
			}
		}
	}
}

func issuer(t *testing.T, s *svid, roots []*ca.RootInfo) string {
	t.Helper()
	for _, r := range roots {
		if s.cert.Leaf.CheckSignatureFrom(r.Certificate) == nil {
			return r.Subject
		}
	}
	t.Fatal("leaf signed by no known root")
	return ""
}

func rootPtrs(st ca.Status) []*ca.RootInfo {
	out := make([]*ca.RootInfo, len(st.Roots))
	for i := range st.Roots {
		out[i] = &st.Roots[i]
	}
	return out
}

func phases(st ca.Status) []ca.RootPhase {
	var out []ca.RootPhase
	for _, r := range st.Roots {
		out = append(out, r.Phase)
	}
	return out
}

func samePhases(got []ca.RootPhase, want ...ca.RootPhase) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestRotationNeverFailsAConnection walks two root rotations with a fake
// clock. At every phase, every pair of workloads still holding a valid
// certificate (each with the bundle it got when it was issued, as a real
// workload has until it renews) completes a TLS 1.3 handshake both ways.
// After a root is retired, a leaf it signed is refused although it has not
// expired.
func TestRotationNeverFailsAConnection(t *testing.T) {
	clock := newFakeClock(t0)
	opts := ca.Options{Clock: clock, WorkloadTTL: time.Hour} // leaf bounds move in steps of 15 minutes
	a, dir := mustOpen(t, opts)
	const root1, root2, root3 = "CN=Rampart root CA 1,O=cluster.local", "CN=Rampart root CA 2,O=cluster.local", "CN=Rampart root CA 3,O=cluster.local"

	// Stable: one root.
	A := issue(t, a, clock, "default", "a") // expires t0+1h
	if got := len(A.bundle.X509Authorities()); got != 1 {
		t.Fatalf("stable bundle has %d roots", got)
	}

	// Phase a: the new root is trusted, the old one signs.
	clock.Set(t0.Add(50 * time.Minute))
	st, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	switchAt := t0.Add(time.Hour + 15*time.Minute) // A's expiry, plus the bound's step
	if st.Phase != ca.RotationPrepared || !samePhases(phases(st), ca.PhaseActive, ca.PhaseTrusted) || !st.Roots[1].PhaseUntil.Equal(switchAt) {
		t.Fatalf("after Rotate: %+v, want prepared, new root signing at %v", st, switchAt)
	}
	if len(a.Bundle()) != 2 {
		t.Fatal("the new root is not in the bundle")
	}
	B := issue(t, a, clock, "default", "b") // expires t0+1h50m
	if got := issuer(t, B, rootPtrs(st)); got != root1 {
		t.Errorf("phase a: leaf signed by %s, want the old root", got)
	}
	allPairsConnect(t, "phase a", map[string]*svid{"A(old leaf, old bundle)": A, "B(old leaf, both roots)": B})

	// The state survives a restart in phase a.
	if b, err := ca.Open(dir, opts); err != nil || b.Status().Phase != ca.RotationPrepared || len(b.Bundle()) != 2 {
		t.Fatalf("reopen in phase a: %v", err)
	}

	// Phase b starts by itself once every leaf from before the rotation
	// has expired: A is gone, every live workload trusts the new root.
	clock.Set(switchAt.Add(-time.Second))
	if p := a.Status().Phase; p != ca.RotationPrepared {
		t.Fatalf("a second before the switch: phase %s", p)
	}
	clock.Set(switchAt)
	st = a.Status()
	if st.Phase != ca.RotationSwitched || !samePhases(phases(st), ca.PhaseTrusted, ca.PhaseActive) {
		t.Fatalf("at the switch: %+v, want switched", st)
	}
	retireAt := t0.Add(2*time.Hour + 5*time.Minute) // B's expiry, plus the bound's step
	if !st.Roots[0].PhaseUntil.Equal(retireAt) {
		t.Errorf("old root retires at %v, want %v", st.Roots[0].PhaseUntil, retireAt)
	}
	C := issue(t, a, clock, "default", "c")
	if got := issuer(t, C, rootPtrs(st)); got != root2 {
		t.Errorf("phase b: leaf signed by %s, want the new root", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "root-1-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old root's key is still on disk after the switch (stat: %v)", err)
	}
	allPairsConnect(t, "phase b", map[string]*svid{"B(old leaf)": B, "C(new leaf)": C})

	// A restart in phase b keeps it, and the restarted CA signs with the
	// new root.
	a, err = ca.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(time.Hour + 40*time.Minute))
	D := issue(t, a, clock, "default", "d")
	if got := issuer(t, D, rootPtrs(a.Status())); got != root2 {
		t.Errorf("phase b after restart: leaf signed by %s, want the new root", got)
	}
	allPairsConnect(t, "phase b, later", map[string]*svid{"B(old leaf)": B, "C(new leaf)": C, "D(new leaf)": D})

	// Phase c: the old root leaves the bundle when its last leaf expires.
	clock.Set(retireAt.Add(-time.Second))
	if n := len(a.Bundle()); n != 2 {
		t.Fatalf("a second before retirement the bundle has %d roots", n)
	}
	clock.Set(retireAt)
	st = a.Status()
	if st.Phase != ca.RotationStable || !samePhases(phases(st), ca.PhaseRetired, ca.PhaseActive) || len(a.Bundle()) != 1 {
		t.Fatalf("at retirement: %+v, want stable with the old root retired", st)
	}
	E := issue(t, a, clock, "default", "e")
	if n := len(E.bundle.X509Authorities()); n != 1 {
		t.Errorf("bundle after retirement has %d roots", n)
	}
	allPairsConnect(t, "phase c", map[string]*svid{"C": C, "D": D, "E(new bundle only)": E})

	// A second rotation, hurried by an operator: Promote, then
	// FinishRotation, each before its time.
	clock.Set(t0.Add(2*time.Hour + 10*time.Minute))
	if _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	H := issue(t, a, clock, "default", "h") // root 2 leaf, trusts roots 2 and 3; expires t0+3h10m
	clock.Set(t0.Add(2*time.Hour + 15*time.Minute))
	st, err = a.Promote()
	if err != nil || st.Phase != ca.RotationSwitched {
		t.Fatalf("Promote: %v, %+v", err, st)
	}
	F := issue(t, a, clock, "default", "f")
	if got := issuer(t, F, rootPtrs(st)); got != root3 {
		t.Errorf("after Promote: leaf signed by %s, want root 3", got)
	}
	allPairsConnect(t, "promoted", map[string]*svid{"H(root 2 leaf)": H, "F(root 3 leaf)": F})
	// Why phase a waits: E has not renewed since the rotation began, so it
	// does not trust root 3 yet and refuses F.
	if cerr, _, _, _ := handshake(t, ca.ClientTLSConfig(E, nil), ca.ServerTLSConfig(F, nil)); !errors.Is(cerr, ca.ErrUntrustedChain) {
		t.Errorf("a workload with the old bundle accepted a leaf of the new root: %v", cerr)
	}

	clock.Set(t0.Add(2*time.Hour + 20*time.Minute))
	st, err = a.FinishRotation()
	if err != nil || st.Phase != ca.RotationStable || !samePhases(phases(st), ca.PhaseRetired, ca.PhaseRetired, ca.PhaseActive) {
		t.Fatalf("FinishRotation: %v, %+v", err, st)
	}
	if len(a.Bundle()) != 1 || !bytes.Equal(a.Bundle()[0].Raw, st.Roots[2].Certificate.Raw) {
		t.Fatal("bundle after FinishRotation is not root 3 alone")
	}
	I := issue(t, a, clock, "default", "i") // trusts root 3 only
	allPairsConnect(t, "finished", map[string]*svid{"F": F, "I": I})
	if !clock.Now().Before(H.cert.Leaf.NotAfter) {
		t.Fatal("H expired; the refusal below would prove nothing")
	}
	want := "ca: verify peer spiffe://cluster.local/ns/default/sa/h: chain does not lead to a root of the trust bundle: x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority"
	_, serr, _, _ := handshake(t, ca.ClientTLSConfig(H, nil), ca.ServerTLSConfig(I, nil))
	if serr == nil || serr.Error() != want {
		t.Errorf("server with the new bundle, client with a retired root's leaf: %v, want %s", serr, want)
	}
	cerr, _, _, _ := handshake(t, ca.ClientTLSConfig(I, nil), ca.ServerTLSConfig(H, nil))
	if cerr == nil || cerr.Error() != want {
		t.Errorf("client with the new bundle, server with a retired root's leaf: %v, want %s", cerr, want)
	}
	for _, name := range []string{"root-2-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still on disk after its root was retired", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "root-3-key.pem")); err != nil {
		t.Errorf("the signing root's key: %v", err)
	}
	// Retired roots stay listed, with when they were retired.
	if st.Roots[1].PhaseUntil.IsZero() || st.Roots[1].PhaseUntil.After(clock.Now()) {
		t.Errorf("retired root 2 lists retirement at %v", st.Roots[1].PhaseUntil)
	}
}

func TestRotateBeforeAnyLeaf(t *testing.T) {
	clock := newFakeClock(t0)
	a, dir := mustOpen(t, ca.Options{Clock: clock})
	old := a.Bundle()[0]
	// Nothing was signed, so nobody can hold a leaf of the old root, nor
	// a bundle without the new one: the rotation completes at once.
	st, err := a.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != ca.RotationStable || !samePhases(phases(st), ca.PhaseRetired, ca.PhaseActive) {
		t.Fatalf("status %+v, want stable with the first root retired", st)
	}
	if b := a.Bundle(); len(b) != 1 || bytes.Equal(b[0].Raw, old.Raw) {
		t.Error("the bundle still holds the old root")
	}
	if _, err := os.Stat(filepath.Join(dir, "root-1-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the old root's key is still on disk")
	}
}

func TestRotationErrors(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	if _, err := a.Promote(); err == nil || err.Error() != "ca: promote: no root rotation in progress" || !errors.Is(err, ca.ErrNoRotation) {
		t.Errorf("Promote when stable: %v", err)
	}
	if _, err := a.FinishRotation(); err == nil || err.Error() != "ca: finish rotation: no root rotation in progress" || !errors.Is(err, ca.ErrNoRotation) {
		t.Errorf("FinishRotation when stable: %v", err)
	}
	issue(t, a, clock, "default", "web")
	if _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	st, err := a.Rotate()
	if err == nil || err.Error() != "ca: rotate: a root rotation is in progress (phase prepared)" || !errors.Is(err, ca.ErrRotationInProgress) {
		t.Errorf("second Rotate: %v", err)
	}
	if len(st.Roots) != 2 {
		t.Errorf("a refused Rotate created a root: %d roots", len(st.Roots))
	}
	if _, err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Promote(); err != nil || st.Phase != ca.RotationSwitched {
		t.Errorf("Promote twice: %v, phase %s; want no error, switched", err, st.Phase)
	}
	if _, err := a.Rotate(); !errors.Is(err, ca.ErrRotationInProgress) {
		t.Errorf("Rotate while switched: %v", err)
	}
}
