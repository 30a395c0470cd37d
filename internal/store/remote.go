package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RemoteConfig configures OpenRemote.
type RemoteConfig struct {
	// Endpoints are the client URLs of the etcd members, for example
	// https://10.0.0.1:2379.
	Endpoints []string
	// CAFile is the PEM bundle that verifies the members' certificates;
	// empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key that
	// etcd's --client-cert-auth asks for. Both or neither.
	CertFile, KeyFile string
	// DialTimeout bounds connecting and the first request; 0 means five
	// seconds.
	DialTimeout time.Duration
	// Logger receives the etcd client's warnings and errors; nil means
	// slog.Default().
	Logger *slog.Logger
}

// OpenRemote connects to an external etcd cluster. It uses TLS when any
// certificate file is given or an endpoint is https://, and returns an error
// unless a member answers within the dial timeout.
func OpenRemote(ctx context.Context, cfg RemoteConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("open remote store: no etcd endpoints")
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("open remote store: %w", err)
	}
	timeout := cfg.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          cfg.Endpoints,
		TLS:                tlsCfg,
		DialTimeout:        timeout,
		MaxCallSendMsgSize: clientMaxSendBytes,
		Logger:             zapLogger(cfg.Logger, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("open remote store: %w", err)
	}
	s := newEtcd(cli, cfg.Endpoints, nil)
	if err := s.ping(ctx, timeout); err != nil {
		cli.Close()
		return nil, fmt.Errorf("open remote store: %w", err)
	}
	return s, nil
}

// tlsConfig returns the client TLS configuration, or nil for plain gRPC.
func (cfg RemoteConfig) tlsConfig() (*tls.Config, error) {
	secure := cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != ""
	var plain string
	for _, ep := range cfg.Endpoints {
		switch {
		case strings.HasPrefix(ep, "https://"), strings.HasPrefix(ep, "unixs://"):
			secure = true
		case strings.HasPrefix(ep, "http://"), strings.HasPrefix(ep, "unix://"):
			plain = ep
		}
	}
	if secure && plain != "" {
		return nil, fmt.Errorf("endpoint %s is not TLS but other endpoints or certificate files are; use https://", plain)
	}
	if !secure {
		return nil, nil
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("give both a client certificate and its key, or neither")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate found", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
