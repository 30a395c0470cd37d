package mesh_test

import (
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
)

func TestExplain(t *testing.T) {
	e := mustEngine(t, mesh.Options{},
		peer("foo", "strict", "", `{mtls: {mode: STRICT}}`),
		authz("foo", "deny-admin", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`),
		authz("foo", "allow-team", `{selector: {matchLabels: {app: api}}, rules: [{from: [{source: {namespaces: ["team"]}}, {source: {principals: ["*/sa/ops"]}}]}, {to: [{operation: {methods: ["POST"]}}], when: [{key: "request.headers[x-env]", values: ["prod"]}]}]}`),
		authz("foo", "web-only", `{selector: {matchLabels: {app: web}}, rules: [{}]}`),
		authz("bar", "elsewhere", `{rules: [{}]}`))
	tr := e.Explain(server, httpRequest())
	if tr.Decision.Allow || tr.Decision.Reason() != "denied: ALLOW policies apply (foo/allow-team) and none matches" {
		t.Fatalf("decision %s", tr.Decision.Reason())
	}
	if d := e.Authorize(server, httpRequest()); d.Reason() != tr.Decision.Reason() {
		t.Fatalf("Explain decided %q, Authorize %q", tr.Decision.Reason(), d.Reason())
	}
	want := []string{
		"workload foo (app=api, version=v1), service account api (root namespace istio-system)",
		"mTLS: STRICT (namespace-level PeerAuthentication foo/strict)",
		"AuthorizationPolicies for this HTTP request:",
		"  DENY foo/deny-admin (namespace foo)",
		`    rule 0: no match: spec.rules[0].to[0].operation.paths ["/admin*"] does not match path "/api/v1/items"`,
		"  ALLOW foo/allow-team (namespace foo, selector app=api)",
		`    rule 0: no match: no from entry matches: spec.rules[0].from[0].source.namespaces ["team"] does not match source namespace "client"; spec.rules[0].from[1].source.principals ["*/sa/ops"] does not match source principal "cluster.local/ns/client/sa/curl"`,
		"  not applied: bar/elsewhere (namespace bar)",
		"  not applied: foo/web-only (selector app=web)",
		"decision: denied: ALLOW policies apply (foo/allow-team) and none matches",
	}
	got := tr.String()
	for _, line := range want {
		if !strings.Contains(got, line) {
			t.Errorf("trace lacks %q:\n%s", line, got)
		}
	}
	// rule 1's when passes (x-env is prod), so its reason must be the
	// method, not the header.
	if !strings.Contains(got, `rule 1: no match: spec.rules[1].to[0].operation.methods ["POST"] does not match method "GET"`) {
		t.Errorf("rule 1 must fail on its method:\n%s", got)
	}
}

func TestExplainTCP(t *testing.T) {
	e := mustEngine(t, mesh.Options{},
		peer("foo", "strict", "", `{mtls: {mode: STRICT}}`),
		authz("foo", "deny-get", `{action: DENY, rules: [{to: [{operation: {methods: ["GET"], ports: ["9000"]}}]}]}`),
		authz("foo", "allow-get", `{rules: [{to: [{operation: {methods: ["GET"]}}]}]}`))
	r := tcpConn(9000)
	r.SourcePrincipal = ""
	got := e.Explain(server, r).String()
	for _, line := range []string{
		"a plaintext connection to this port is refused before authorization",
		"AuthorizationPolicies for this TCP connection:",
		"rule 0: match: HTTP-only fields ignored on a TCP connection",
		"rule 0: no match: uses HTTP-only fields, so this ALLOW rule matches no TCP connection",
		"decision: denied by AuthorizationPolicy foo/deny-get (DENY) rule 0",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("trace lacks %q:\n%s", line, got)
		}
	}
}

func TestExplainNoPolicy(t *testing.T) {
	e := mustEngine(t, mesh.Options{}, authz("foo", "nothing", `{}`))
	got := e.Explain(server, httpRequest()).String()
	for _, line := range []string{
		"mTLS: PERMISSIVE (default: no PeerAuthentication sets a mode)",
		"  ALLOW foo/nothing (namespace foo): no rules, matches nothing",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("trace lacks %q:\n%s", line, got)
		}
	}
	got = mustEngine(t, mesh.Options{}).Explain(server, httpRequest()).String()
	if !strings.Contains(got, "no AuthorizationPolicy applies to this HTTP request") || !strings.Contains(got, "decision: allowed: no ALLOW policy applies") {
		t.Errorf("trace:\n%s", got)
	}
}
