package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/proxy"
)

const trustDomain = "cluster.local"

// pki is a test certificate authority: an ECDSA P-256 root and leaves
// with the URI SAN spiffe://cluster.local/ns/<ns>/sa/<sa>, usable as
// client and server certificates, as the mesh's CA issues them.
type pki struct {
	root    *x509.Certificate
	rootKey *ecdsa.PrivateKey
	pool    *x509.CertPool
}

func mustPKI(t testing.TB, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{name}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &pki{root: root, rootKey: key, pool: pool}
}

// leaf issues a certificate whose only URI SAN is spiffeID.
func (p *pki) leaf(t testing.TB, spiffeID string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(spiffeID)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root, &key.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// verify checks a chain against the root and returns the leaf's SPIFFE ID.
func (p *pki) verify(raw [][]byte) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return "", err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: p.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "", err
	}
	if len(certs[0].URIs) != 1 || certs[0].URIs[0].Scheme != "spiffe" {
		return "", errors.New("no SPIFFE ID")
	}
	return certs[0].URIs[0].String(), nil
}

// testCerts implements proxy.Certificates with leaves of one pki, issued
// on first use per workload.
type testCerts struct {
	t      testing.TB
	pki    *pki
	mu     sync.Mutex
	leaves map[string]tls.Certificate
}

func newTestCerts(t testing.TB, p *pki) *testCerts {
	return &testCerts{t: t, pki: p, leaves: map[string]tls.Certificate{}}
}

func (c *testCerts) leafFor(w proxy.Workload) tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := w.Principal(trustDomain)
	l, ok := c.leaves[id]
	if !ok {
		l = c.pki.leaf(c.t, id)
		c.leaves[id] = l
	}
	return l
}

func (c *testCerts) ServerConfig(w proxy.Workload) (*tls.Config, error) {
	leaf := c.leafFor(w)
	return &tls.Config{
		Certificates: []tls.Certificate{leaf},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := c.pki.verify(raw)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(id, "spiffe://"+trustDomain+"/ns/") {
				return fmt.Errorf("peer %s is not of trust domain %s", id, trustDomain)
			}
			return nil
		},
	}, nil
}

func (c *testCerts) ClientConfig(src, dst proxy.Workload) (*tls.Config, error) {
	leaf := c.leafFor(src)
	want := dst.Principal(trustDomain)
	return &tls.Config{
		Certificates:       []tls.Certificate{leaf},
		InsecureSkipVerify: true, // SPIFFE IDs are not host names; VerifyPeerCertificate checks
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := c.pki.verify(raw)
			if err != nil {
				return err
			}
			if id != want {
				return fmt.Errorf("server is %s, want %s", id, want)
			}
			return nil
		},
	}, nil
}

// testResolver maps addresses to workloads.
type testResolver struct {
	mu   sync.Mutex
	byIP map[netip.Addr]proxy.Workload
	mesh map[string]bool
}

func newTestResolver() *testResolver {
	return &testResolver{byIP: map[netip.Addr]proxy.Workload{}, mesh: map[string]bool{}}
}

func (r *testResolver) add(w proxy.Workload, mesh bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ip := range w.IPs {
		r.byIP[ip] = w
	}
	r.mesh[w.Key()] = mesh
}

func (r *testResolver) Resolve(ip netip.Addr) (proxy.Workload, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.byIP[ip]
	return w, ok && r.mesh[w.Key()]
}

// testAuthz is a scriptable Authorizer: by default everything is allowed
// over mTLS, plaintext is STRICT and no port needs HTTP.
type testAuthz struct {
	mu        sync.Mutex
	peer      map[uint16]proxy.PeerMode
	l7        map[uint16]bool
	connDeny  map[string]bool // principals denied at connection level
	connErr   error           // AuthorizeConn fails with this
	connPanic bool
	// denyHTTP decides requests; nil allows all.
	denyHTTP func(proxy.Request) (proxy.Decision, bool)
	conns    []proxy.Connection
	requests []proxy.Request
}

func newTestAuthz() *testAuthz {
	return &testAuthz{peer: map[uint16]proxy.PeerMode{}, l7: map[uint16]bool{}, connDeny: map[string]bool{}}
}

func (a *testAuthz) set(fn func(a *testAuthz)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a)
}

func (a *testAuthz) PeerMode(_ proxy.Workload, port uint16) (proxy.PeerMode, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.peer[port], nil
}

func (a *testAuthz) AuthorizeConn(c proxy.Connection) (proxy.Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conns = append(a.conns, c)
	if a.connPanic {
		panic("test authorizer panics")
	}
	if a.connErr != nil {
		return proxy.Decision{Allow: true}, a.connErr // fail closed must ignore Allow
	}
	if a.connDeny[c.SourcePrincipal] {
		return proxy.Decision{Policy: "test/deny-conn", Reason: "principal denied"}, nil
	}
	return proxy.Decision{Allow: true, Policy: "test/allow"}, nil
}

func (a *testAuthz) NeedsHTTP(_ proxy.Workload, port uint16) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.l7[port], nil
}

func (a *testAuthz) AuthorizeHTTP(r proxy.Request) (proxy.Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = append(a.requests, r)
	if a.denyHTTP != nil {
		if d, deny := a.denyHTTP(r); deny {
			return d, nil
		}
	}
	return proxy.Decision{Allow: true, Policy: "test/allow-http"}, nil
}

// testRecorder keeps every record.
type testRecorder struct {
	mu      sync.Mutex
	records []proxy.Record
}

func (r *testRecorder) Record(rec proxy.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
}

// wait returns the first record matching pred, waiting up to 5 s: records
// are emitted when connections end, which may be just after the client
// saw its answer.
func (r *testRecorder) wait(t testing.TB, what string, pred func(proxy.Record) bool) proxy.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		for _, rec := range r.records {
			if pred(rec) {
				r.mu.Unlock()
				return rec
			}
		}
		all := append([]proxy.Record(nil), r.records...)
		r.mu.Unlock()
		if time.Now().After(deadline) {
			for _, rec := range all {
				t.Logf("record: %+v", rec)
			}
			t.Fatalf("no record: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *testRecorder) reset() {
	r.mu.Lock()
	r.records = nil
	r.mu.Unlock()
}
