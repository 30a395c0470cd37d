package mesh_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/resource"
)

// doc renders one Istio policy document. spec is a YAML flow mapping, so
// tables stay one line per case.
func doc(kind, ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: %s\nmetadata: {name: %s, namespace: %s}\nspec: %s\n", kind, name, ns, spec)
}

func authz(ns, name, spec string) string { return doc("AuthorizationPolicy", ns, name, spec) }

// decode decodes documents through the real decoder and validator, so
// every test policy is one a user could write.
func decode(t testing.TB, docs ...string) []*resource.Object {
	t.Helper()
	objs, err := resource.DecodeBytes("test.yaml", []byte(strings.Join(docs, "---\n")))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return objs
}

// mustEngine decodes docs and builds an engine with opts.
func mustEngine(t testing.TB, opts mesh.Options, docs ...string) *mesh.Engine {
	t.Helper()
	e, err := mesh.NewEngine(decode(t, docs...), opts)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

// server is the workload most tests protect.
var server = mesh.Workload{Namespace: "foo", Labels: map[string]string{"app": "api", "version": "v1"}, ServiceAccount: "api"}

// httpRequest is a typical mTLS HTTP request from client/curl to server.
func httpRequest() mesh.Request {
	return mesh.Request{
		HTTP:            true,
		SourcePrincipal: "cluster.local/ns/client/sa/curl",
		SourceIP:        netip.MustParseAddr("10.0.0.5"),
		DestinationIP:   netip.MustParseAddr("10.0.1.9"),
		DestinationPort: 8080,
		SNI:             "outbound_.8080_._.api.foo.svc.cluster.local",
		Host:            "api.example.com",
		Method:          "GET",
		Path:            "/api/v1/items?page=2",
		Headers:         http.Header{"X-Env": {"prod"}},
	}
}

// tcpConn is the same client opening a plain TCP connection.
func tcpConn(port uint16) mesh.Request {
	return mesh.Request{
		SourcePrincipal: "cluster.local/ns/client/sa/curl",
		SourceIP:        netip.MustParseAddr("10.0.0.5"),
		DestinationIP:   netip.MustParseAddr("10.0.1.9"),
		DestinationPort: port,
	}
}

// alice is an authenticated end user.
func alice() *mesh.AuthResult {
	return &mesh.AuthResult{
		Authenticated: true,
		Issuer:        "https://issuer.example",
		Subject:       "alice",
		Audiences:     []string{"web", "mobile"},
		Presenter:     "web-client",
		Claims: map[string]any{
			"iss":    "https://issuer.example",
			"sub":    "alice",
			"role":   "admin",
			"groups": []any{"dev", "admins"},
			"org":    map[string]any{"team": "security", "size": float64(12)},
			"level":  float64(3),
		},
	}
}
