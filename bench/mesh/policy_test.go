package main

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/resource"
)

var (
	testClient = proxy.Workload{Namespace: benchNamespace, Name: clientName, ServiceAccount: clientName, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.21")}}
	testServer = proxy.Workload{Namespace: benchNamespace, Name: serverName, ServiceAccount: serverName, IPs: []netip.Addr{netip.MustParseAddr("127.0.0.22")}}
)

// benchRequest is the request the benchmark sends, as the server side's
// proxy hands it to the authorizer.
func benchRequest() proxy.Request {
	return proxy.Request{
		Connection: proxy.Connection{
			Transport:       proxy.TransportHBONE,
			SourcePrincipal: "spiffe://cluster.local/ns/bench/sa/client",
			Source:          netip.MustParseAddrPort("127.0.0.21:40000"),
			Destination:     testServer,
			DestinationPort: 8080,
		},
		Method: http.MethodGet,
		Host:   "127.0.0.22:8080",
		Path:   benchPath,
		Header: benchHeader(),
	}
}

func TestPolicyHasTwentyRules(t *testing.T) {
	objs, err := resource.DecodeBytes("policy.yaml", policyYAML)
	if err != nil {
		t.Fatal(err)
	}
	if n := countRules(objs); n != 20 {
		t.Errorf("policy.yaml has %d rules, want 20", n)
	}
}

// TestPolicyAllowsByLastRule checks the premise of (c): the benchmark's
// request passes every DENY rule and is allowed only by the last ALLOW
// rule, so every rule is evaluated; and near misses are denied, so the
// rules are not trivially true.
func TestPolicyAllowsByLastRule(t *testing.T) {
	e, err := newEngine(policyRules)
	if err != nil {
		t.Fatal(err)
	}
	v := e.Workload(meshWorkload(testServer))
	req := func(mod func(*mesh.Request)) mesh.Request {
		r := connRequest(benchRequest().Connection)
		r.HTTP, r.Method, r.Path, r.Headers = true, http.MethodGet, benchPath, benchHeader()
		if mod != nil {
			mod(&r)
		}
		return r
	}
	d := v.Authorize(req(nil))
	if !d.Allow || d.Policy.String() != "bench/allow-api" || d.Rule != 13 {
		t.Fatalf("benchmark request: %s; want allowed by bench/allow-api rule 13 (its 14th and last)", d.Reason())
	}
	if !v.NeedsHTTP() {
		t.Error("NeedsHTTP() = false: (c) would not authorize per request")
	}
	tests := []struct {
		name   string
		mod    func(*mesh.Request)
		policy string
	}{
		{"admin path", func(r *mesh.Request) { r.Path = deniedPath }, "bench/deny-sensitive"},
		{"php file", func(r *mesh.Request) { r.Path = "/api/v1/items/x.php" }, "bench/deny-sensitive"},
		{"TRACE", func(r *mesh.Request) { r.Method = "TRACE" }, "bench/deny-sensitive"},
		{"legacy header", func(r *mesh.Request) { r.Headers = http.Header{"X-Tenant": {"acme"}, "X-Legacy-Client": {"1"}} }, "bench/deny-legacy"},
		{"legacy principal", func(r *mesh.Request) { r.SourcePrincipal = "cluster.local/ns/legacy/sa/old" }, "bench/deny-legacy"},
		{"other tenant", func(r *mesh.Request) { r.Headers = http.Header{"X-Tenant": {"umbrella"}} }, ""},
		{"no tenant", func(r *mesh.Request) { r.Headers = nil }, ""},
		{"POST", func(r *mesh.Request) { r.Method = http.MethodPost }, ""},
		{"other principal", func(r *mesh.Request) { r.SourcePrincipal = "cluster.local/ns/bench/sa/other" }, ""},
		{"plaintext", func(r *mesh.Request) { r.SourcePrincipal = "" }, ""},
		{"other path", func(r *mesh.Request) { r.Path = "/api/v1/orders/42" }, ""},
	}
	for _, tt := range tests {
		d := v.Authorize(req(tt.mod))
		if d.Allow {
			t.Errorf("%s: allowed (%s)", tt.name, d.Reason())
			continue
		}
		if tt.policy != "" && (d.Action != mesh.ActionDeny || d.Policy.String() != tt.policy) {
			t.Errorf("%s: %s; want denied by %s", tt.name, d.Reason(), tt.policy)
		}
		if tt.policy == "" && d.Action != "" {
			t.Errorf("%s: %s; want denied because no ALLOW rule matches", tt.name, d.Reason())
		}
	}
}

func TestNewEngineUnknownPolicy(t *testing.T) {
	if _, err := newEngine("all"); err == nil {
		t.Error("newEngine accepted an unknown policy set")
	}
}
