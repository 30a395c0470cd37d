package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Signer signs a workload's certificate signing request. The Authority is
// one, in-process; on a node apart from the control plane it is a client
// of the control plane over a channel that authenticates the node, and the
// control plane checks that the node may ask for that namespace and
// service account. chain is the leaf then intermediates, bundle the
// trusted roots, all DER.
type Signer interface {
	Sign(ctx context.Context, csrDER []byte, namespace, serviceAccount string) (chain, bundle [][]byte, err error)
}

// Defaults of SourceOptions.
const (
	DefaultRenewJitter = 0.1
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = 30 * time.Second
)

// SourceOptions configure a Source.
type SourceOptions struct {
	// Namespace and ServiceAccount name the workload identity.
	Namespace      string
	ServiceAccount string
	// TrustDomain is the trust domain expected of the certificate and
	// the bundle; default DefaultTrustDomain.
	TrustDomain string
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// Jitter moves each renewal by up to this fraction of the
	// certificate's lifetime either way, so that workloads started
	// together do not renew together; default DefaultRenewJitter,
	// negative for none, at most 0.4.
	Jitter float64
	// RetryMin and RetryMax bound the backoff between failed renewals;
	// defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Logger receives renewal failures; nil means slog.Default().
	Logger *slog.Logger
}

// Source holds the X.509 SVID of one workload identity and keeps it fresh.
// It generates a new P-256 key for every certificate, has a Signer sign a
// CSR for it, and renews at half the remaining lifetime, give or take
// Jitter. A failed renewal is retried with exponential backoff while the
// current certificate is still served: a Source never has no certificate,
// and replaces it only with one that verifies against the bundle it came
// with. It is safe for concurrent use.
type Source struct {
	signer   Signer
	id       spiffeid.ID
	ns, sa   string
	clock    Clock
	jitter   float64
	retryMin time.Duration
	retryMax time.Duration
	log      *slog.Logger

	mu      sync.RWMutex
	cur     *SVID
	changed chan struct{}

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// SVID is one certificate of a Source and the bundle that came with it.
// It does not change once a Source has published it.
type SVID struct {
	ID     spiffeid.ID
	Chain  []*x509.Certificate // leaf first, without the root
	Bundle *x509bundle.Bundle
	// Received is when the Source got the certificate; the lifetime used
	// for renewal runs from here to the leaf's NotAfter, since NotBefore
	// is backdated and the CA's clock may differ from ours.
	Received time.Time
	// RenewAt is when the Source starts renewing it.
	RenewAt time.Time

	cert *tls.Certificate
}

// NewSource obtains the first certificate for the identity in opts,
// retrying with backoff until it succeeds or ctx ends, and then keeps it
// renewed in the background until Close. ctx bounds only the first
// certificate.
func NewSource(ctx context.Context, signer Signer, opts SourceOptions) (*Source, error) {
	if signer == nil {
		return nil, errors.New("ca: new source: no signer")
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(opts.TrustDomain)
	if err != nil {
		return nil, &IdentityError{Field: "trust domain", Value: opts.TrustDomain, Reason: err.Error()}
	}
	id, err := WorkloadID(td, opts.Namespace, opts.ServiceAccount)
	if err != nil {
		return nil, err
	}
	s := &Source{
		signer:   signer,
		id:       id,
		ns:       opts.Namespace,
		sa:       opts.ServiceAccount,
		clock:    orSystemClock(opts.Clock),
		jitter:   opts.Jitter,
		retryMin: opts.RetryMin,
		retryMax: opts.RetryMax,
		log:      opts.Logger,
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	switch {
	case s.jitter == 0:
		s.jitter = DefaultRenewJitter
	case s.jitter < 0:
		s.jitter = 0
	case s.jitter > 0.4:
		s.jitter = 0.4
	}
	if s.retryMin <= 0 {
		s.retryMin = DefaultRetryMin
	}
	if s.retryMax <= 0 {
		s.retryMax = DefaultRetryMax
	}
	s.retryMax = max(s.retryMax, s.retryMin)
	if s.log == nil {
		s.log = slog.Default()
	}

	var svid *SVID
	for attempt := 1; ; attempt++ {
		svid, err = s.fetch(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ca: source %s: first certificate: %w", id, errors.Join(ctx.Err(), err))
		}
		d := s.backoff(attempt, time.Time{})
		s.log.Warn("ca: first workload certificate failed", "id", id.String(), "attempt", attempt, "retryIn", d, "error", err)
		t := s.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("ca: source %s: first certificate: %w", id, errors.Join(ctx.Err(), err))
		case <-t.C():
		}
	}
	s.cur = svid
	// The renewal timer exists before NewSource returns, so that a test
	// that moves a fake clock on cannot do so before the timer is set.
	timer := s.clock.NewTimer(svid.RenewAt.Sub(svid.Received))
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(runCtx, timer)
	return s, nil
}

func (s *Source) run(ctx context.Context, timer Timer) {
	defer close(s.done)
	attempt := 0
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		svid, err := s.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			attempt++
			notAfter := s.SVID().Chain[0].NotAfter
			d := s.backoff(attempt, notAfter)
			s.log.Warn("ca: renew workload certificate failed; serving the current one", "id", s.id.String(), "attempt", attempt, "retryIn", d, "notAfter", notAfter, "error", err)
			timer = s.clock.NewTimer(d)
			continue
		}
		attempt = 0
		// As in NewSource, the next timer is set before the new
		// certificate is announced.
		timer = s.clock.NewTimer(svid.RenewAt.Sub(svid.Received))
		s.publish(svid)
	}
}

// fetch gets a certificate for a fresh key and checks it: right identity,
// right key, and a chain that verifies against the bundle that came with
// it, so that a broken control plane cannot make the Source replace a good
// certificate with a bad one.
func (s *Source) fetch(ctx context.Context) (*SVID, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate workload key: %w", err)
	}
	// The URI SAN in the CSR is a courtesy to a CA that logs requests;
	// this package's CA ignores it and names the certificate itself.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{s.id.URL()}}, key)
	if err != nil {
		return nil, fmt.Errorf("ca: create csr: %w", err)
	}
	chainDER, bundleDER, err := s.signer.Sign(ctx, csr, s.ns, s.sa)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s: %w", s.id, err)
	}
	if len(chainDER) == 0 {
		return nil, fmt.Errorf("ca: sign %s: empty certificate chain", s.id)
	}
	chain := make([]*x509.Certificate, len(chainDER))
	for i, der := range chainDER {
		if chain[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("ca: sign %s: certificate %d of the chain: %w", s.id, i+1, err)
		}
	}
	roots := make([]*x509.Certificate, len(bundleDER))
	for i, der := range bundleDER {
		if roots[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("ca: sign %s: certificate %d of the bundle: %w", s.id, i+1, err)
		}
	}
	bundle := x509bundle.FromX509Authorities(s.id.TrustDomain(), roots)
	leaf := chain[0]
	if !keyMatches(key, leaf) {
		return nil, fmt.Errorf("ca: sign %s: issued certificate is not for the key in the CSR", s.id)
	}
	now := s.clock.Now()
	id, err := VerifyPeer(chain, bundle, RoleServer, now)
	if err == nil {
		err = checkLeafProfile(leaf, RoleClient)
	}
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s: issued certificate does not verify: %w", s.id, err)
	}
	if id != s.id {
		return nil, fmt.Errorf("ca: sign %s: issued certificate is for %s", s.id, id)
	}
	svid := &SVID{
		ID:       id,
		Chain:    chain,
		Bundle:   bundle,
		Received: now,
		RenewAt:  now.Add(s.renewDelay(leaf.NotAfter.Sub(now))),
		cert:     &tls.Certificate{Certificate: chainDER, PrivateKey: key, Leaf: leaf},
	}
	return svid, nil
}

// renewDelay is half of the remaining lifetime, moved by up to Jitter of
// it either way.
func (s *Source) renewDelay(remaining time.Duration) time.Duration {
	d := remaining / 2
	if s.jitter > 0 {
		d += time.Duration((mrand.Float64()*2 - 1) * s.jitter * float64(remaining))
	}
	return max(d, 0)
}

// backoff is the wait before retry number attempt: RetryMin doubled per
// failure, give or take 10%, at most RetryMax; and, while the current
// certificate is valid, at most half of what remains of it, so that a
// short-lived certificate gets several more tries before it expires.
func (s *Source) backoff(attempt int, notAfter time.Time) time.Duration {
	base := float64(s.retryMin) * math.Pow(2, float64(min(attempt, 64)-1))
	d := time.Duration(min(base*(0.9+0.2*mrand.Float64()), float64(s.retryMax)))
	if !notAfter.IsZero() {
		if rem := notAfter.Sub(s.clock.Now()); rem > 0 && d > rem/2 {
			d = max(rem/2, s.retryMin)
		}
	}
	return d
}

func (s *Source) publish(svid *SVID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = svid
	close(s.changed)
	s.changed = make(chan struct{})
}

// ID returns the workload's SPIFFE ID.
func (s *Source) ID() spiffeid.ID { return s.id }

// SVID returns the current certificate.
func (s *Source) SVID() *SVID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Changed returns a channel that is closed when the certificate is next
// replaced. Call it again after that for the following replacement.
func (s *Source) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// TLSCertificate returns the current certificate and key for crypto/tls.
func (s *Source) TLSCertificate() (*tls.Certificate, error) { return s.SVID().cert, nil }

// TrustBundle returns the bundle that came with the current certificate.
func (s *Source) TrustBundle() *x509bundle.Bundle { return s.SVID().Bundle }

// GetX509BundleForTrustDomain returns the current bundle if td is the
// workload's trust domain, so that a Source is an x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != s.id.TrustDomain() {
		return nil, fmt.Errorf("ca: no bundle for trust domain %q, only for %q", td, s.id.TrustDomain())
	}
	return s.TrustBundle(), nil
}

// Now returns the Source's clock reading, at which peers are verified.
func (s *Source) Now() time.Time { return s.clock.Now() }

// Close stops renewing and waits for the renewal goroutine to end. The
// last certificate stays readable.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
	})
	return nil
}

var (
	_ SVIDSource        = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)
