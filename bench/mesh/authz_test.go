package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/proxy"
)

func mustAuthorizer(t *testing.T, policy string) *meshnode.Authorizer {
	t.Helper()
	e, err := newEngine(policy)
	if err != nil {
		t.Fatal(err)
	}
	return newAuthorizer(e, testServer)
}

func TestAuthorizerL7(t *testing.T) {
	a := mustAuthorizer(t, policyRules)
	conn := benchRequest().Connection
	// The connection is let through to be parsed: as a connection, the
	// ALLOW rules with HTTP fields match nothing and would refuse it.
	if d, err := a.AuthorizeConn(conn); err != nil || !d.Allow {
		t.Fatalf("AuthorizeConn = %+v, %v; want allowed, decided per request", d, err)
	}
	if need, err := a.NeedsHTTP(testServer, 8080); err != nil || !need {
		t.Fatalf("NeedsHTTP = %v, %v; want true", need, err)
	}
	tests := []struct {
		name       string
		mod        func(*proxy.Request)
		allow      bool
		status     int
		policy     string
		reasonPart string
	}{
		{name: "benchmark request", allow: true, policy: "AuthorizationPolicy/bench/allow-api"},
		{name: "denied path", mod: func(r *proxy.Request) { r.Path = deniedPath }, policy: "AuthorizationPolicy/bench/deny-sensitive", reasonPart: "denied by"},
		{name: "principal without spiffe:// still matches", mod: func(r *proxy.Request) { r.SourcePrincipal = "cluster.local/ns/bench/sa/client" }, allow: true, policy: "AuthorizationPolicy/bench/allow-api"},
		{name: "dot segments matched as normalised", mod: func(r *proxy.Request) { r.Path = "/api/v1/items/../../admin/x" }, reasonPart: "none matches"},
		{name: "encoded NUL refused", mod: func(r *proxy.Request) { r.Path = "/api/v1/items/%00" }, status: http.StatusBadRequest},
		{name: "no ALLOW rule", mod: func(r *proxy.Request) { r.Method = http.MethodPatch }, reasonPart: "none matches"},
	}
	for _, tt := range tests {
		r := benchRequest()
		if tt.mod != nil {
			tt.mod(&r)
		}
		d, err := a.AuthorizeHTTP(r)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if d.Allow != tt.allow || d.Status != tt.status || d.Policy != tt.policy || !strings.Contains(d.Reason, tt.reasonPart) {
			t.Errorf("%s: %+v; want allow %v, status %d, policy %q, reason containing %q", tt.name, d, tt.allow, tt.status, tt.policy, tt.reasonPart)
		}
		if d.Allow && d.Reason != "" {
			t.Errorf("%s: an allowed request rendered a reason %q", tt.name, d.Reason)
		}
	}
}

func TestAuthorizerL4(t *testing.T) {
	a := mustAuthorizer(t, policyNone)
	if need, err := a.NeedsHTTP(testServer, 8080); err != nil || need {
		t.Errorf("NeedsHTTP = %v, %v; want false without policies", need, err)
	}
	if d, err := a.AuthorizeConn(benchRequest().Connection); err != nil || !d.Allow {
		t.Errorf("AuthorizeConn = %+v, %v; want allowed without policies", d, err)
	}
	// Istio's default with no PeerAuthentication is PERMISSIVE.
	if m, err := a.PeerMode(testServer, 8080); err != nil || m != proxy.PeerPermissive {
		t.Errorf("PeerMode = %v, %v; want PERMISSIVE", m, err)
	}
}

func TestAuthorizerUnknownWorkload(t *testing.T) {
	a := mustAuthorizer(t, policyNone)
	c := benchRequest().Connection
	c.Destination = testClient
	if _, err := a.AuthorizeConn(c); err == nil {
		t.Error("AuthorizeConn for another workload: no error")
	}
	if _, err := a.NeedsHTTP(testClient, 80); err == nil {
		t.Error("NeedsHTTP for another workload: no error")
	}
	if m, err := a.PeerMode(testClient, 80); err == nil || m != proxy.PeerStrict {
		t.Errorf("PeerMode for another workload = %v, %v; want STRICT and an error", m, err)
	}
}
