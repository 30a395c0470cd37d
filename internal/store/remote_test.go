package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/store"
)

// TestRemoteTLS runs the store against an external etcd that serves TLS and
// requires client certificates, and checks that connections without the
// right credentials are refused.
func TestRemoteTLS(t *testing.T) {
	pki := newTestPKI(t)
	srv := startEtcd(t, pki)
	s, err := srv.open(10 * time.Second)
	if err != nil {
		t.Fatalf("open with client certificate: %v", err)
	}
	defer s.Close()
	mustApply(t, s, []store.KV{put("/tls", "ok")}, nil)
	if kv, err := s.Get(testContext(t), "/tls"); err != nil || string(kv.Value) != "ok" {
		t.Fatalf("Get = %+v, %v", kv, err)
	}

	other := newTestPKI(t) // a CA etcd does not trust, and that does not sign etcd
	tests := []struct {
		name    string
		cfg     store.RemoteConfig
		wantErr string
	}{
		{"no client certificate", store.RemoteConfig{CAFile: pki.CA}, "does not answer"},
		{"certificate from another CA", store.RemoteConfig{CAFile: pki.CA, CertFile: other.ClientCert, KeyFile: other.ClientKey}, "does not answer"},
		{"server not trusted", store.RemoteConfig{CAFile: other.CA, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, "does not answer"},
		{"plain to TLS", store.RemoteConfig{Endpoints: []string{strings.Replace(srv.Endpoint, "https", "http", 1)}}, "does not answer"},
		{"cert without key", store.RemoteConfig{CAFile: pki.CA, CertFile: pki.ClientCert}, "both a client certificate and its key"},
		{"missing CA file", store.RemoteConfig{CAFile: pki.CA + ".missing"}, "read CA bundle"},
		{"http endpoint with files", store.RemoteConfig{Endpoints: []string{"http://127.0.0.1:1"}, CAFile: pki.CA}, "is not TLS"},
		{"no endpoints", store.RemoteConfig{Endpoints: []string{}}, "no etcd endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.Endpoints == nil {
				cfg.Endpoints = []string{srv.Endpoint}
			}
			cfg.DialTimeout = 2 * time.Second
			s, err := store.OpenRemote(context.Background(), cfg)
			if err == nil {
				s.Close()
				t.Fatal("OpenRemote succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestRemoteUnreachable checks that OpenRemote gives up after the dial
// timeout when nothing listens.
func TestRemoteUnreachable(t *testing.T) {
	start := time.Now()
	_, err := store.OpenRemote(context.Background(), store.RemoteConfig{
		Endpoints: []string{"http://127.0.0.1:" + itoa(freePort(t))}, DialTimeout: time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v with a 1s dial timeout", d)
	}
}
