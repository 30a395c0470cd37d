package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/rampartsec/rampart/internal/ca"
)

// t0 is where fake clocks start: a round second, so that lifetimes, which
// X.509 keeps in whole seconds, come out exact.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// fakeClock is a Clock whose time moves only when the test says so. Every
// timer it creates is reported on created, which lets a test wait until
// the code under test has armed its timer before moving time on, and check
// the delay it chose.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan time.Duration
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, created: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) ca.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	c.created <- d
	return t
}

// Advance moves the clock on by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// Set moves the clock to at, which must not be in the past.
func (c *fakeClock) Set(at time.Time) { c.Advance(at.Sub(c.Now())) }

// nextTimer waits for the code under test to arm a timer and returns its
// delay.
func (c *fakeClock) nextTimer(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no timer was armed within 10s")
		return 0
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// mustOpen opens an Authority on a fresh directory.
func mustOpen(t *testing.T, opts ca.Options) (*ca.Authority, string) {
	t.Helper()
	dir := t.TempDir() + "/ca"
	a, err := ca.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a, dir
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// svid is a workload's certificate and the bundle it got with it, frozen:
// an SVIDSource that never renews, for tests that control exactly which
// certificate each side holds.
type svid struct {
	cert   *tls.Certificate
	bundle *x509bundle.Bundle
	clock  ca.Clock
}

func (s *svid) TLSCertificate() (*tls.Certificate, error) { return s.cert, nil }
func (s *svid) TrustBundle() *x509bundle.Bundle           { return s.bundle }
func (s *svid) Now() time.Time                            { return s.clock.Now() }

// issue has a signs a certificate for ns/sa and returns it as a frozen svid.
func issue(t *testing.T, a *ca.Authority, clock ca.Clock, ns, sa string) *svid {
	t.Helper()
	key := newP256(t)
	iss, err := a.SignCSR(newCSR(t, key, nil), ca.SignRequest{Namespace: ns, ServiceAccount: sa})
	if err != nil {
		t.Fatalf("SignCSR: %v", err)
	}
	return frozen(t, iss.Chain, iss.Bundle, key, clock)
}

func frozen(t *testing.T, chain, bundle [][]byte, key crypto.Signer, clock ca.Clock) *svid {
	t.Helper()
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	var roots []*x509.Certificate
	for _, der := range bundle {
		r, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, r)
	}
	return &svid{
		cert:   &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf},
		bundle: x509bundle.FromX509Authorities(td, roots),
		clock:  clock,
	}
}

// handshake runs a TLS handshake over loopback TCP between a client and a
// server with the given configurations and exchanges a message both ways,
// so that a refusal that TLS 1.3 reports only after the handshake (the
// server refusing the client's certificate) shows too. It returns each
// side's error and, on success, each side's view of the connection.
func handshake(t *testing.T, clientCfg, serverCfg *tls.Config) (cerr, serr error, ccs, scs tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			serr = err
			return
		}
		c.SetDeadline(deadline)
		ts := tls.Server(c, serverCfg)
		defer ts.Close()
		if serr = ts.Handshake(); serr != nil {
			return
		}
		scs = ts.ConnectionState()
		buf := make([]byte, 4)
		if _, serr = io.ReadFull(ts, buf); serr != nil {
			return
		}
		_, serr = ts.Write(buf)
	}()
	func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			cerr = err
			return
		}
		c.SetDeadline(deadline)
		tc := tls.Client(c, clientCfg)
		defer tc.Close()
		if cerr = tc.Handshake(); cerr != nil {
			return
		}
		ccs = tc.ConnectionState()
		if _, cerr = tc.Write([]byte("ping")); cerr != nil {
			return
		}
		buf := make([]byte, 4)
		if _, cerr = io.ReadFull(tc, buf); cerr != nil {
			return
		}
		if string(buf) != "ping" {
			cerr = errors.New("echo mismatch")
		}
	}()
	<-done
	return cerr, serr, ccs, scs
}

// testCA is a CA made in the test, whose key the test holds, to build the
// malformed certificates the package's own Authority would never issue.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, cn string, parent *testCA, notBefore, notAfter time.Time) *testCA {
	t.Helper()
	key := newP256(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// leafTemplate returns the profile the Authority issues, for ns/sa, valid
// around now; tests break one thing in it at a time.
func leafTemplate(now time.Time, uri string) *x509.Certificate {
	u, err := url.Parse(uri)
	if err != nil {
		panic(err)
	}
	return &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
}

func (c *testCA) sign(t *testing.T, tmpl *x509.Certificate, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func spiffeidTD(t *testing.T, name string) spiffeid.TrustDomain {
	t.Helper()
	d, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t *testing.T, path, typ string, der ...[]byte) {
	t.Helper()
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// editState replaces old by new in the state file of dir.
func editState(t *testing.T, dir, old, new string) {
	t.Helper()
	path := filepath.Join(dir, "state.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("state.json does not contain %q:\n%s", old, data)
	}
	writeFile(t, path, strings.Replace(string(data), old, new, 1))
}
