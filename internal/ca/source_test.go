package ca_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/testenv"
)

// flakySigner passes requests to an Authority, except that it can be told
// to fail the next requests, in turn with an error and with a certificate
// for another workload (which the Source must refuse just the same).
type flakySigner struct {
	a *ca.Authority

	mu    sync.Mutex
	calls int
	fails int
}

func (s *flakySigner) Sign(ctx context.Context, csr []byte, ns, sa string) ([][]byte, [][]byte, error) {
	s.mu.Lock()
	s.calls++
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	n := s.calls
	s.mu.Unlock()
	if !fail {
		return s.a.Sign(ctx, csr, ns, sa)
	}
	if n%2 == 0 {
		return nil, nil, errors.New("control plane unavailable")
	}
	return s.a.Sign(ctx, csr, ns, "impostor")
}

func (s *flakySigner) failNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = n
}

func (s *flakySigner) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(&testenv.SyncBuffer{}, nil)) }

func mustSource(t *testing.T, signer ca.Signer, opts ca.SourceOptions) *ca.Source {
	t.Helper()
	if opts.Namespace == "" {
		opts.Namespace, opts.ServiceAccount = "default", "web"
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := ca.NewSource(ctx, signer, opts)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func waitChanged(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("certificate not replaced within 10s")
	}
}

func TestSourceRenewsAtHalfLife(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	sig := &flakySigner{a: a}
	src := mustSource(t, sig, ca.SourceOptions{Clock: clock, Jitter: -1})
	first := src.SVID()
	if first.ID.String() != "spiffe://cluster.local/ns/default/sa/web" || src.ID() != first.ID {
		t.Fatalf("ID %s", first.ID)
	}
	if b, err := src.GetX509BundleForTrustDomain(a.TrustDomain()); err != nil || !b.Equal(src.TrustBundle()) || len(b.X509Authorities()) != 1 || !b.X509Authorities()[0].Equal(a.Bundle()[0]) {
		t.Errorf("the Source's bundle is not the Authority's: %v", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeidTD(t, "other.example")); err == nil {
		t.Error("the Source has a bundle for a foreign trust domain")
	}
	if !src.Now().Equal(t0) {
		t.Errorf("the Source reads %v, not its clock", src.Now())
	}
	if d := clock.nextTimer(t); d != 12*time.Hour || !first.RenewAt.Equal(t0.Add(12*time.Hour)) {
		t.Fatalf("renewal in %v (at %v), want 12h: half of 24h without jitter", d, first.RenewAt)
	}

	// Until then the first certificate is served.
	clock.Advance(12*time.Hour - time.Second)
	if src.SVID() != first || sig.count() != 1 {
		t.Fatal("renewed early")
	}
	changed := src.Changed()
	clock.Advance(time.Second)
	waitChanged(t, changed)
	second := src.SVID()
	if second.Chain[0].SerialNumber.Cmp(first.Chain[0].SerialNumber) == 0 {
		t.Fatal("renewal kept the serial")
	}
	if first.Chain[0].PublicKey.(*ecdsa.PublicKey).Equal(second.Chain[0].PublicKey) {
		t.Error("renewal reused the key")
	}
	if !second.Received.Equal(t0.Add(12 * time.Hour)) {
		t.Errorf("received at %v", second.Received)
	}
	cert, _ := src.TLSCertificate()
	if cert.Leaf != second.Chain[0] {
		t.Error("TLSCertificate does not return the renewed certificate")
	}
	if d := clock.nextTimer(t); d != 12*time.Hour {
		t.Errorf("next renewal in %v, want 12h", d)
	}
}

func TestSourceJitter(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	lo, hi := time.Duration(0.4*float64(24*time.Hour)), time.Duration(0.6*float64(24*time.Hour))
	seen := map[time.Duration]bool{}
	for range 20 {
		mustSource(t, a, ca.SourceOptions{Clock: clock})
		d := clock.nextTimer(t)
		if d < lo || d > hi {
			t.Errorf("renewal in %v, want within 10%% of the lifetime around half of it [%v, %v]", d, lo, hi)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 sources renew at only %d distinct times; the jitter does not spread them", len(seen))
	}
}

func TestSourceRetriesWithBackoff(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	sig := &flakySigner{a: a}
	logs := &testenv.SyncBuffer{}
	src := mustSource(t, sig, ca.SourceOptions{Clock: clock, Jitter: -1, RetryMax: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	first := src.SVID()
	renew := clock.nextTimer(t)

	sig.failNext(4)
	clock.Advance(renew)
	within := func(d, want time.Duration) bool { return d >= want*9/10 && d <= want*11/10 }
	b1 := clock.nextTimer(t)
	if !within(b1, time.Second) {
		t.Errorf("first retry in %v, want 1s give or take 10%%", b1)
	}
	clock.Advance(b1)
	b2 := clock.nextTimer(t)
	if !within(b2, 2*time.Second) {
		t.Errorf("second retry in %v, want 2s give or take 10%%", b2)
	}
	clock.Advance(b2)
	if b3 := clock.nextTimer(t); b3 != 3*time.Second {
		t.Errorf("third retry in %v, want RetryMax 3s", b3)
	} else {
		clock.Advance(b3)
	}
	b4 := clock.nextTimer(t)
	if b4 != 3*time.Second {
		t.Errorf("fourth retry in %v, want RetryMax 3s", b4)
	}
	// Through all failures, the Source served its first certificate, and
	// refused the certificate for another workload that came once.
	if src.SVID() != first {
		t.Fatal("certificate replaced by a failed renewal")
	}
	if got := logs.String(); !strings.Contains(got, "control plane unavailable") || !strings.Contains(got, "issued certificate is for spiffe://cluster.local/ns/default/sa/impostor") {
		t.Errorf("failures not logged:\n%s", got)
	}

	changed := src.Changed()
	clock.Advance(b4)
	waitChanged(t, changed)
	if sig.count() != 6 {
		t.Errorf("%d requests, want 6: the first, four failures, one success", sig.count())
	}
	// X.509 keeps whole seconds, so the lifetime from now is up to a
	// second short of 24h.
	if d := clock.nextTimer(t); d != src.SVID().RenewAt.Sub(src.SVID().Received) || d <= 12*time.Hour-time.Second || d > 12*time.Hour {
		t.Errorf("after success the next renewal is in %v, want 12h", d)
	}
}

func TestSourceFirstCertificateRetries(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	sig := &flakySigner{a: a}
	sig.failNext(2)
	type result struct {
		src *ca.Source
		err error
	}
	done := make(chan result, 1)
	go func() {
		src, err := ca.NewSource(context.Background(), sig, ca.SourceOptions{Namespace: "default", ServiceAccount: "web", Clock: clock, Logger: quietLogger()})
		done <- result{src, err}
	}()
	clock.Advance(clock.nextTimer(t))
	clock.Advance(clock.nextTimer(t))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.src.Close()
	if sig.count() != 3 {
		t.Errorf("%d requests, want 3", sig.count())
	}
}

func TestNewSourceErrors(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	b, _ := mustOpen(t, ca.Options{Clock: clock})
	signerFunc := func(f func(ctx context.Context, csr []byte) ([][]byte, [][]byte, error)) ca.Signer {
		return signerFn(f)
	}
	tests := []struct {
		name    string
		signer  ca.Signer
		opts    ca.SourceOptions
		wantErr string
	}{
		{
			name: "signer fails",
			signer: signerFunc(func(context.Context, []byte) ([][]byte, [][]byte, error) {
				return nil, nil, errors.New("permission denied")
			}),
			wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: permission denied",
		},
		{
			name: "certificate for another workload",
			signer: signerFunc(func(ctx context.Context, csr []byte) ([][]byte, [][]byte, error) {
				return a.Sign(ctx, csr, "default", "db")
			}),
			wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: issued certificate is for spiffe://cluster.local/ns/default/sa/db",
		},
		{
			name: "certificate for another key",
			signer: signerFunc(func(ctx context.Context, _ []byte) ([][]byte, [][]byte, error) {
				return a.Sign(ctx, newCSR(t, newP256(t), nil), "default", "web")
			}),
			wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: issued certificate is not for the key in the CSR",
		},
		{
			name: "bundle of another CA",
			signer: signerFunc(func(ctx context.Context, csr []byte) ([][]byte, [][]byte, error) {
				chain, _, err := a.Sign(ctx, csr, "default", "web")
				_, bundle, _ := b.Sign(ctx, newCSR(t, newP256(t), nil), "default", "web")
				return chain, bundle, err
			}),
			wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: issued certificate does not verify: ca: verify peer spiffe://cluster.local/ns/default/sa/web: chain does not lead to a root of the trust bundle",
		},
		{
			name: "empty chain",
			signer: signerFunc(func(context.Context, []byte) ([][]byte, [][]byte, error) {
				return nil, nil, nil
			}),
			wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: empty certificate chain",
		},
		{
			name: "garbage chain",
			signer: signerFunc(func(context.Context, []byte) ([][]byte, [][]byte, error) {
				return [][]byte{[]byte("junk")}, nil, nil
			}),
			wantErr: "ca: sign spiffe://cluster.local/ns/default/sa/web: certificate 1 of the chain: x509: malformed certificate",
		},
		{
			name:    "no signer",
			signer:  nil,
			wantErr: "ca: new source: no signer",
		},
		{
			name:    "bad identity",
			signer:  a,
			opts:    ca.SourceOptions{Namespace: "Default", ServiceAccount: "web"},
			wantErr: `ca: namespace "Default": must be a DNS label`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.Namespace == "" {
				opts.Namespace, opts.ServiceAccount = "default", "web"
			}
			opts.Clock, opts.Logger = clock, quietLogger()
			opts.RetryMin = time.Hour // the fake clock never gets there: one attempt
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			src, err := ca.NewSource(ctx, tt.signer, opts)
			if err == nil {
				src.Close()
				t.Fatal("NewSource succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tt.wantErr)
			}
		})
	}
}

type signerFn func(ctx context.Context, csr []byte) ([][]byte, [][]byte, error)

func (f signerFn) Sign(ctx context.Context, csr []byte, _, _ string) ([][]byte, [][]byte, error) {
	return f(ctx, csr)
}

func TestSourceClose(t *testing.T) {
	clock := newFakeClock(t0)
	a, _ := mustOpen(t, ca.Options{Clock: clock})
	sig := &flakySigner{a: a}
	src := mustSource(t, sig, ca.SourceOptions{Clock: clock})
	d := clock.nextTimer(t)
	first := src.SVID()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	clock.Advance(2 * d)
	if sig.count() != 1 || src.SVID() != first {
		t.Error("a closed Source renewed")
	}
}

// TestSourceRenewsInRealTime runs a Source against an Authority issuing
// two-second certificates on the system clock: it must renew before each
// certificate expires, and its TLS configuration must keep working.
func TestSourceRenewsInRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for real renewals")
	}
	a, _ := mustOpen(t, ca.Options{WorkloadTTL: 2 * time.Second})
	web := mustSource(t, a, ca.SourceOptions{Namespace: "default", ServiceAccount: "web"})
	api := mustSource(t, a, ca.SourceOptions{Namespace: "default", ServiceAccount: "api"})
	for i := range 2 {
		before := web.SVID()
		changed := web.Changed()
		waitChanged(t, changed)
		now := time.Now()
		after := web.SVID()
		if !now.Before(before.Chain[0].NotAfter) {
			t.Errorf("renewal %d at %v, after the certificate expired at %v", i+1, now, before.Chain[0].NotAfter)
		}
		if after.Chain[0].SerialNumber.Cmp(before.Chain[0].SerialNumber) == 0 {
			t.Fatalf("renewal %d kept the certificate", i+1)
		}
		cerr, serr, ccs, _ := handshake(t, ca.ClientTLSConfig(web, nil), ca.ServerTLSConfig(api, nil))
		if cerr != nil || serr != nil {
			t.Fatalf("handshake after renewal %d: client %v, server %v", i+1, cerr, serr)
		}
		if ccs.PeerCertificates[0].SerialNumber.Cmp(api.SVID().Chain[0].SerialNumber) != 0 && ccs.PeerCertificates[0].NotAfter.Before(now) {
			t.Error("the server presented an expired certificate")
		}
	}
}
