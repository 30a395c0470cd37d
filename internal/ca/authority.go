package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults of Options.
const (
	// DefaultWorkloadTTL is Istio's default workload certificate lifetime.
	DefaultWorkloadTTL = 24 * time.Hour
	// DefaultMaxWorkloadTTL is Istio's default upper bound on a requested
	// lifetime (max-workload-cert-ttl).
	DefaultMaxWorkloadTTL = 90 * 24 * time.Hour
	// DefaultRootTTL is the lifetime of a self-signed root: ten years, as
	// Istio's self-signed root.
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
)

// Options configure an Authority. The zero value is a self-signed CA for
// cluster.local issuing 24-hour certificates.
type Options struct {
	// TrustDomain is the SPIFFE trust domain of every issued ID; default
	// DefaultTrustDomain. A state directory is bound to the trust domain it
	// was created with.
	TrustDomain string
	// WorkloadTTL is the lifetime of a certificate when the request does
	// not ask for one; default DefaultWorkloadTTL.
	WorkloadTTL time.Duration
	// MaxWorkloadTTL bounds the lifetime a request may ask for; default
	// DefaultMaxWorkloadTTL.
	MaxWorkloadTTL time.Duration
	// RootTTL is the lifetime of the self-signed roots the Authority
	// creates; default DefaultRootTTL. Ignored with PluginDir.
	RootTTL time.Duration
	// PluginDir, if set, is a directory in Istio's plug-in layout
	// (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) whose
	// intermediate signs instead of a self-signed root.
	PluginDir string
	// Clock is the time source; nil means the system clock.
	Clock Clock
}

func (o Options) resolve() (Options, spiffeid.TrustDomain, error) {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		return o, td, &IdentityError{Field: "trust domain", Value: o.TrustDomain, Reason: err.Error()}
	}
	if o.WorkloadTTL == 0 {
		o.WorkloadTTL = DefaultWorkloadTTL
	}
	if o.MaxWorkloadTTL == 0 {
		o.MaxWorkloadTTL = DefaultMaxWorkloadTTL
	}
	if o.RootTTL == 0 {
		o.RootTTL = DefaultRootTTL
	}
	switch {
	case o.WorkloadTTL < 0 || o.MaxWorkloadTTL < 0 || o.RootTTL < 0:
		return o, td, fmt.Errorf("ca: options: negative lifetime: %w", ErrInvalidTTL)
	case o.WorkloadTTL > o.MaxWorkloadTTL:
		return o, td, fmt.Errorf("ca: options: WorkloadTTL %v exceeds MaxWorkloadTTL %v: %w", o.WorkloadTTL, o.MaxWorkloadTTL, ErrInvalidTTL)
	}
	o.Clock = orSystemClock(o.Clock)
	return o, td, nil
}

// Authority is the mesh's certificate authority. It is safe for concurrent
// use. Only one Authority, in one process, may own a state directory at a
// time; a second one would not see the first one's rotations.
type Authority struct {
	dir  string
	opts Options
	td   spiffeid.TrustDomain

	mu sync.Mutex // serialises signing, rotation and state writes
	be backend
}

// backend is where the roots come from: the self-signed state directory or
// a plug-in CA. Methods are called with Authority.mu held.
type backend interface {
	// signer returns what signs a leaf at now.
	signer(now time.Time) (*signingCA, error)
	// bundle returns the roots trusted at now.
	bundle(now time.Time) []*x509.Certificate
	// status describes the roots, retired ones included, at now.
	status(now time.Time) Status
}

// signingCA is the certificate and key that sign leaves, and what goes with
// them.
type signingCA struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain [][]byte // DER of cert and the intermediates above it, without the root; empty when cert is the root
	// notAfter is the earliest NotAfter of cert, its intermediates and its
	// root: a leaf must not outlive any of them.
	notAfter time.Time
	// record notes, before a leaf is issued, the leaf's NotAfter, so that
	// the root stays trusted until the leaf has expired.
	record func(notAfter time.Time) error
}

// Open opens the certificate authority whose state is kept in dir, creating
// the directory (mode 0700) and a self-signed root on first use, and loading
// the same roots on every later open. With Options.PluginDir the operator's
// CA signs instead and dir holds nothing yet.
func Open(dir string, opts Options) (*Authority, error) {
	o, td, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	a := &Authority{dir: dir, opts: o, td: td}
	now := o.Clock.Now()
	if o.PluginDir != "" {
		p, err := loadPlugin(o.PluginDir, now)
		if err != nil {
			return nil, err
		}
		a.be = p
		return a, nil
	}
	s, err := openSelfSigned(dir, td, o, now)
	if err != nil {
		return nil, err
	}
	a.be = s
	return a, nil
}

// TrustDomain returns the trust domain of the IDs the Authority issues.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

// Bundle returns the roots trusted now: the signing root and, during a
// rotation, the other root. Workloads verify peers against it.
func (a *Authority) Bundle() []*x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.be.bundle(a.opts.Clock.Now())
}

// GetX509BundleForTrustDomain returns the current trust bundle when td is
// the Authority's trust domain, so that an Authority can be passed where
// go-spiffe wants an x509bundle.Source.
func (a *Authority) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != a.td {
		return nil, fmt.Errorf("ca: no bundle for trust domain %q, only for %q", td, a.td)
	}
	return x509bundle.FromX509Authorities(a.td, a.Bundle()), nil
}

// Status describes the CA: its mode, rotation phase and roots.
func (a *Authority) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.be.status(a.opts.Clock.Now())
	st.TrustDomain = a.td.Name()
	return st
}

var _ x509bundle.Source = (*Authority)(nil)
