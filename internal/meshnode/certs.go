package meshnode

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/proxy"
)

// DefaultServiceAccount is the service account of a workload that names
// none, as in Kubernetes.
const DefaultServiceAccount = "default"

// Certificates keeps one certificate source per workload identity
// (namespace and service account) for the proxy: workloads that share a
// service account share a certificate, as in Istio. It implements
// proxy.Certificates.
type Certificates struct {
	signer ca.Signer
	td     spiffeid.TrustDomain
	log    *slog.Logger

	mu      sync.Mutex
	sources map[string]*sourceRef // "namespace/serviceaccount"
}

type sourceRef struct {
	src  *ca.Source
	refs int
}

// NewCertificates returns certificates signed by signer for trust domain
// td. In the standalone node the signer is the Authority itself; an agent
// of a cluster would send its CSRs to the control plane instead.
func NewCertificates(signer ca.Signer, td string, log *slog.Logger) (*Certificates, error) {
	if td == "" {
		td = ca.DefaultTrustDomain
	}
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", td, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Certificates{signer: signer, td: t, log: log, sources: map[string]*sourceRef{}}, nil
}

func serviceAccount(sa string) string {
	if sa == "" {
		return DefaultServiceAccount
	}
	return sa
}

func idKey(ns, sa string) string { return ns + "/" + serviceAccount(sa) }

// Acquire makes sure the identity of namespace/sa has a certificate,
// obtaining the first one before it returns, and counts one more user.
func (c *Certificates) Acquire(ctx context.Context, ns, sa string) error {
	k := idKey(ns, sa)
	c.mu.Lock()
	if r, ok := c.sources[k]; ok {
		r.refs++
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	// The first certificate is signed outside the lock: signing can take
	// a round trip to the control plane.
	src, err := ca.NewSource(ctx, c.signer, ca.SourceOptions{
		Namespace: ns, ServiceAccount: serviceAccount(sa), TrustDomain: c.td.Name(),
		Logger: c.log.With("identity", k),
	})
	if err != nil {
		return fmt.Errorf("certificate for %s: %w", k, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.sources[k]; ok { // acquired concurrently
		r.refs++
		src.Close()
		return nil
	}
	c.sources[k] = &sourceRef{src: src, refs: 1}
	return nil
}

// Release drops one user of namespace/sa; the last one stops its renewals.
func (c *Certificates) Release(ns, sa string) {
	k := idKey(ns, sa)
	c.mu.Lock()
	r, ok := c.sources[k]
	if ok {
		r.refs--
		if r.refs > 0 {
			ok = false
		} else {
			delete(c.sources, k)
		}
	}
	c.mu.Unlock()
	if ok {
		r.src.Close()
	}
}

// Source returns the certificate source of namespace/sa, if acquired.
func (c *Certificates) Source(ns, sa string) (*ca.Source, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.sources[idKey(ns, sa)]
	if !ok {
		return nil, false
	}
	return r.src, true
}

// Close stops every source.
func (c *Certificates) Close() {
	c.mu.Lock()
	srcs := c.sources
	c.sources = map[string]*sourceRef{}
	c.mu.Unlock()
	for _, r := range srcs {
		r.src.Close()
	}
}

// ServerConfig answers handshakes to w with w's certificate and accepts any
// client certificate of the trust domain; who may talk is authorization's
// business, after the handshake.
func (c *Certificates) ServerConfig(w proxy.Workload) (*tls.Config, error) {
	src, ok := c.Source(w.Namespace, w.ServiceAccount)
	if !ok {
		return nil, fmt.Errorf("no certificate for %s", idKey(w.Namespace, w.ServiceAccount))
	}
	return ca.ServerTLSConfig(src, nil), nil
}

// ClientConfig opens src's tunnels with src's certificate and accepts only
// dst's identity as the server, so a tunnel cannot land on an impostor.
func (c *Certificates) ClientConfig(src, dst proxy.Workload) (*tls.Config, error) {
	s, ok := c.Source(src.Namespace, src.ServiceAccount)
	if !ok {
		return nil, fmt.Errorf("no certificate for %s", idKey(src.Namespace, src.ServiceAccount))
	}
	want, err := ca.WorkloadID(c.td, dst.Namespace, serviceAccount(dst.ServiceAccount))
	if err != nil {
		return nil, fmt.Errorf("identity of %s: %w", dst.Key(), err)
	}
	return ca.ClientTLSConfig(s, spiffeid.MatchID(want)), nil
}
