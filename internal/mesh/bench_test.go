package mesh_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
)

// benchEngine has one DENY policy and an ALLOW policy of 20 rules, each
// using sources, operations and conditions; only the last rule matches
// the benchmark request, so every rule is evaluated.
func benchEngine(b *testing.B) *mesh.WorkloadView {
	b.Helper()
	var rules []string
	for i := range 19 {
		rules = append(rules, fmt.Sprintf(`{from: [{source: {principals: ["cluster.local/ns/team%d/sa/*"]}}, {source: {namespaces: ["ns%d"]}}], to: [{operation: {methods: ["GET", "POST"], paths: ["/svc%d/*"]}}], when: [{key: "request.headers[x-tenant]", values: ["t%d"]}]}`, i, i, i, i))
	}
	rules = append(rules, `{from: [{source: {principals: ["cluster.local/ns/client/*"], notIpBlocks: ["192.168.0.0/16"]}}], to: [{operation: {hosts: ["*.example.com"], methods: ["GET"], paths: ["/api/*"], ports: ["8080"]}}], when: [{key: "request.headers[x-env]", values: ["prod"]}, {key: source.ip, values: ["10.0.0.0/8"]}]}`)
	e := mustEngine(b, mesh.Options{},
		authz("foo", "deny-admin", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}, {from: [{source: {notNamespaces: ["client", "foo"]}}]}]}`),
		authz("foo", "allow", "{rules: ["+strings.Join(rules, ", ")+"]}"))
	return e.Workload(server)
}

func BenchmarkAuthorize20Rules(b *testing.B) {
	v := benchEngine(b)
	r := httpRequest()
	if d := v.Authorize(r); !d.Allow || d.Rule != 19 {
		b.Fatalf("setup: %s", d.Reason())
	}
	b.ReportAllocs()
	for b.Loop() {
		v.Authorize(r)
	}
}

func BenchmarkAuthorize20RulesDenied(b *testing.B) {
	v := benchEngine(b)
	r := httpRequest()
	r.Method = "DELETE"
	if d := v.Authorize(r); d.Allow {
		b.Fatalf("setup: %s", d.Reason())
	}
	b.ReportAllocs()
	for b.Loop() {
		v.Authorize(r)
	}
}

func BenchmarkAuthorize20RulesTCP(b *testing.B) {
	v := benchEngine(b)
	r := tcpConn(8080)
	b.ReportAllocs()
	for b.Loop() {
		v.Authorize(r)
	}
}

func BenchmarkWorkloadView(b *testing.B) {
	v := benchEngine(b)
	_ = v
	e := mustEngine(b, mesh.Options{}, authz("foo", "a", `{rules: [{}]}`), authz("istio-system", "b", `{action: DENY}`), peer("foo", "p", "", `{mtls: {mode: STRICT}}`))
	b.ReportAllocs()
	for b.Loop() {
		e.Workload(server)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	iss := newIssuer(b, "https://issuer.example", "k1")
	e := mustEngine(b, mesh.Options{Now: clock}, reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(b, iss, "")+"]}"))
	v := e.Workload(server)
	r := bearer(iss.token(b, nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, status, err := v.Authenticate(r); status != 200 {
			b.Fatal(err)
		}
	}
}
