package main

import (
	"crypto/tls"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/proxy"
)

// workloadCerts implements proxy.Certificates with one ca.Source per local
// workload: the server side presents the workload's certificate and admits
// any workload of the trust domain (authorization is the Authorizer's);
// the client side presents its own and accepts only the SPIFFE ID of the
// destination workload it meant to reach.
type workloadCerts struct {
	td      spiffeid.TrustDomain
	sources map[string]*ca.Source // by proxy.Workload.Key()
}

var _ proxy.Certificates = (*workloadCerts)(nil)

func (c *workloadCerts) source(w proxy.Workload) (*ca.Source, error) {
	s, ok := c.sources[w.Key()]
	if !ok {
		return nil, fmt.Errorf("no certificate for workload %s", w.Key())
	}
	return s, nil
}

// ServerConfig returns w's inbound configuration.
func (c *workloadCerts) ServerConfig(w proxy.Workload) (*tls.Config, error) {
	s, err := c.source(w)
	if err != nil {
		return nil, err
	}
	return ca.ServerTLSConfig(s, nil), nil
}

// ClientConfig returns src's configuration for a tunnel to dst.
func (c *workloadCerts) ClientConfig(src, dst proxy.Workload) (*tls.Config, error) {
	s, err := c.source(src)
	if err != nil {
		return nil, err
	}
	want, err := ca.WorkloadID(c.td, dst.Namespace, dst.ServiceAccount)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", dst.Key(), err)
	}
	return ca.ClientTLSConfig(s, spiffeid.MatchID(want)), nil
}
