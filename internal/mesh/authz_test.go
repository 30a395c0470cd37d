package mesh_test

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
)

// fieldCase is one field of a rule against one request. The rule is put in
// an ALLOW policy on its own, so the request is allowed exactly when the
// rule matches.
type fieldCase struct {
	name  string
	rule  string // YAML flow mapping of one rule
	req   func(*mesh.Request)
	match bool
}

func runFieldCases(t *testing.T, cases []fieldCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{}, authz("foo", "p", "{action: ALLOW, rules: ["+tc.rule+"]}"))
			r := httpRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			d := e.Authorize(server, r)
			if d.Allow != tc.match {
				t.Fatalf("rule %s: Allow = %v, want %v (%s)", tc.rule, d.Allow, tc.match, d.Reason())
			}
			if tc.match && (d.Action != mesh.ActionAllow || d.Policy.String() != "foo/p" || d.Rule != 0) {
				t.Fatalf("decision = %+v, want ALLOW foo/p rule 0", d)
			}
		})
	}
}

func plaintext(r *mesh.Request)  { r.SourcePrincipal = "" }
func withAlice(r *mesh.Request)  { r.Auth = alice() }
func spiffeForm(r *mesh.Request) { r.SourcePrincipal = "spiffe://" + r.SourcePrincipal }

func TestSourceFields(t *testing.T) {
	runFieldCases(t, []fieldCase{
		{"principals exact", `{from: [{source: {principals: ["cluster.local/ns/client/sa/curl"]}}]}`, nil, true},
		{"principals exact other", `{from: [{source: {principals: ["cluster.local/ns/client/sa/other"]}}]}`, nil, false},
		{"principals prefix", `{from: [{source: {principals: ["cluster.local/ns/client/*"]}}]}`, nil, true},
		{"principals prefix other", `{from: [{source: {principals: ["cluster.local/ns/other/*"]}}]}`, nil, false},
		{"principals suffix", `{from: [{source: {principals: ["*/sa/curl"]}}]}`, nil, true},
		{"principals suffix other", `{from: [{source: {principals: ["*/sa/wget"]}}]}`, nil, false},
		{"principals presence", `{from: [{source: {principals: ["*"]}}]}`, nil, true},
		{"principals presence plaintext", `{from: [{source: {principals: ["*"]}}]}`, plaintext, false},
		{"principals spiffe form in request", `{from: [{source: {principals: ["cluster.local/ns/client/sa/curl"]}}]}`, spiffeForm, true},
		{"principals one of many", `{from: [{source: {principals: ["a/ns/b/sa/c", "cluster.local/ns/client/sa/curl"]}}]}`, nil, true},
		{"notPrincipals listed", `{from: [{source: {notPrincipals: ["cluster.local/ns/client/sa/curl"]}}]}`, nil, false},
		{"notPrincipals not listed", `{from: [{source: {notPrincipals: ["cluster.local/ns/x/sa/y"]}}]}`, nil, true},
		// Envoy's Not(authenticated) matches a plaintext peer: Istio's
		// security advisory 2021-004 is about exactly this.
		{"notPrincipals plaintext", `{from: [{source: {notPrincipals: ["cluster.local/ns/client/sa/curl"]}}]}`, plaintext, true},
		{"notPrincipals presence plaintext", `{from: [{source: {notPrincipals: ["*"]}}]}`, plaintext, true},

		{"requestPrincipals exact", `{from: [{source: {requestPrincipals: ["https://issuer.example/alice"]}}]}`, withAlice, true},
		{"requestPrincipals exact other", `{from: [{source: {requestPrincipals: ["https://issuer.example/bob"]}}]}`, withAlice, false},
		{"requestPrincipals any subject", `{from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]}`, withAlice, true},
		{"requestPrincipals any issuer", `{from: [{source: {requestPrincipals: ["*/alice"]}}]}`, withAlice, true},
		{"requestPrincipals issuer suffix", `{from: [{source: {requestPrincipals: ["*issuer.example/alice"]}}]}`, withAlice, true},
		{"requestPrincipals presence", `{from: [{source: {requestPrincipals: ["*"]}}]}`, withAlice, true},
		{"requestPrincipals presence no token", `{from: [{source: {requestPrincipals: ["*"]}}]}`, nil, false},
		// Istio splits at the last '/', so a '*' inside the issuer part
		// of a URL issuer is a prefix of the subject, not of the issuer.
		{"requestPrincipals url prefix quirk", `{from: [{source: {requestPrincipals: ["https://issuer*"]}}]}`, withAlice, false},
		{"requestPrincipals prefix without slash", `{from: [{source: {requestPrincipals: ["issuer*"]}}]}`, func(r *mesh.Request) {
			r.Auth = &mesh.AuthResult{Authenticated: true, Issuer: "issuer-foo", Subject: "x"}
		}, true},
		{"notRequestPrincipals no token", `{from: [{source: {notRequestPrincipals: ["*"]}}]}`, nil, true},
		{"notRequestPrincipals token", `{from: [{source: {notRequestPrincipals: ["*"]}}]}`, withAlice, false},

		{"namespaces exact", `{from: [{source: {namespaces: ["client"]}}]}`, nil, true},
		{"namespaces other", `{from: [{source: {namespaces: ["other"]}}]}`, nil, false},
		{"namespaces prefix", `{from: [{source: {namespaces: ["cli*"]}}]}`, nil, true},
		{"namespaces suffix", `{from: [{source: {namespaces: ["*ent"]}}]}`, nil, true},
		{"namespaces plaintext", `{from: [{source: {namespaces: ["*"]}}]}`, plaintext, false},
		{"notNamespaces listed", `{from: [{source: {notNamespaces: ["client"]}}]}`, nil, false},
		{"notNamespaces plaintext", `{from: [{source: {notNamespaces: ["client"]}}]}`, plaintext, true},

		{"serviceAccounts namespaced", `{from: [{source: {serviceAccounts: ["client/curl"]}}]}`, nil, true},
		{"serviceAccounts defaults to policy namespace", `{from: [{source: {serviceAccounts: ["curl"]}}]}`, nil, false},
		{"serviceAccounts policy namespace", `{from: [{source: {serviceAccounts: ["curl"]}}]}`, func(r *mesh.Request) {
			r.SourcePrincipal = "cluster.local/ns/foo/sa/curl"
		}, true},
		{"serviceAccounts other", `{from: [{source: {serviceAccounts: ["client/wget"]}}]}`, nil, false},
		{"serviceAccounts plaintext", `{from: [{source: {serviceAccounts: ["client/curl"]}}]}`, plaintext, false},
		{"notServiceAccounts listed", `{from: [{source: {notServiceAccounts: ["client/curl"]}}]}`, nil, false},
		{"notServiceAccounts other", `{from: [{source: {notServiceAccounts: ["client/wget"]}}]}`, nil, true},

		{"ipBlocks cidr", `{from: [{source: {ipBlocks: ["10.0.0.0/24"]}}]}`, nil, true},
		{"ipBlocks single ip", `{from: [{source: {ipBlocks: ["10.0.0.5"]}}]}`, nil, true},
		{"ipBlocks other", `{from: [{source: {ipBlocks: ["192.168.0.0/16"]}}]}`, nil, false},
		{"ipBlocks ipv4-mapped source", `{from: [{source: {ipBlocks: ["10.0.0.0/24"]}}]}`, func(r *mesh.Request) {
			r.SourceIP = netip.MustParseAddr("::ffff:10.0.0.5")
		}, true},
		{"ipBlocks ipv6", `{from: [{source: {ipBlocks: ["fd00::/64"]}}]}`, func(r *mesh.Request) {
			r.SourceIP = netip.MustParseAddr("fd00::7")
		}, true},
		{"notIpBlocks listed", `{from: [{source: {notIpBlocks: ["10.0.0.0/8"]}}]}`, nil, false},
		{"notIpBlocks other", `{from: [{source: {notIpBlocks: ["192.168.0.0/16"]}}]}`, nil, true},
		{"remoteIpBlocks defaults to source", `{from: [{source: {remoteIpBlocks: ["10.0.0.5/32"]}}]}`, nil, true},
		{"remoteIpBlocks set", `{from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]}`, func(r *mesh.Request) {
			r.RemoteIP = netip.MustParseAddr("203.0.113.7")
		}, true},
		{"remoteIpBlocks set other", `{from: [{source: {remoteIpBlocks: ["10.0.0.0/8"]}}]}`, func(r *mesh.Request) {
			r.RemoteIP = netip.MustParseAddr("203.0.113.7")
		}, false},
		{"notRemoteIpBlocks listed", `{from: [{source: {notRemoteIpBlocks: ["10.0.0.0/8"]}}]}`, nil, false},

		{"source fields are ANDed", `{from: [{source: {namespaces: ["client"], ipBlocks: ["192.168.0.0/16"]}}]}`, nil, false},
		{"sources are ORed", `{from: [{source: {namespaces: ["other"]}}, {source: {ipBlocks: ["10.0.0.0/8"]}}]}`, nil, true},
	})
}

func TestOperationFields(t *testing.T) {
	runFieldCases(t, []fieldCase{
		{"hosts exact", `{to: [{operation: {hosts: ["api.example.com"]}}]}`, nil, true},
		{"hosts case-insensitive", `{to: [{operation: {hosts: ["API.Example.COM"]}}]}`, nil, true},
		{"hosts suffix", `{to: [{operation: {hosts: ["*.example.com"]}}]}`, nil, true},
		{"hosts prefix", `{to: [{operation: {hosts: ["api.*"]}}]}`, nil, true},
		{"hosts other", `{to: [{operation: {hosts: ["www.example.com"]}}]}`, nil, false},
		// The Host header as sent: a port makes it a different host, as
		// Istio's security best practices warn.
		{"hosts with port", `{to: [{operation: {hosts: ["api.example.com"]}}]}`, func(r *mesh.Request) { r.Host = "api.example.com:8080" }, false},
		{"notHosts listed", `{to: [{operation: {notHosts: ["*.example.com"]}}]}`, nil, false},
		{"notHosts other", `{to: [{operation: {notHosts: ["*.internal"]}}]}`, nil, true},

		{"ports", `{to: [{operation: {ports: ["8080"]}}]}`, nil, true},
		{"ports other", `{to: [{operation: {ports: ["9090", "9091"]}}]}`, nil, false},
		{"notPorts listed", `{to: [{operation: {notPorts: ["8080"]}}]}`, nil, false},
		{"notPorts other", `{to: [{operation: {notPorts: ["9090"]}}]}`, nil, true},

		{"methods", `{to: [{operation: {methods: ["GET", "HEAD"]}}]}`, nil, true},
		{"methods case-sensitive", `{to: [{operation: {methods: ["get"]}}]}`, nil, false},
		{"methods prefix", `{to: [{operation: {methods: ["G*"]}}]}`, nil, true},
		{"methods other", `{to: [{operation: {methods: ["POST"]}}]}`, nil, false},
		{"notMethods listed", `{to: [{operation: {notMethods: ["GET"]}}]}`, nil, false},
		{"notMethods other", `{to: [{operation: {notMethods: ["DELETE"]}}]}`, nil, true},

		{"paths exact ignores query", `{to: [{operation: {paths: ["/api/v1/items"]}}]}`, nil, true},
		{"paths prefix", `{to: [{operation: {paths: ["/api/*"]}}]}`, nil, true},
		{"paths suffix", `{to: [{operation: {paths: ["*/items"]}}]}`, nil, true},
		{"paths presence", `{to: [{operation: {paths: ["*"]}}]}`, nil, true},
		{"paths other", `{to: [{operation: {paths: ["/api"]}}]}`, nil, false},
		{"paths case-sensitive", `{to: [{operation: {paths: ["/API/*"]}}]}`, nil, false},
		{"paths fragment ignored", `{to: [{operation: {paths: ["/x"]}}]}`, func(r *mesh.Request) { r.Path = "/x#frag" }, true},
		{"notPaths listed", `{to: [{operation: {notPaths: ["/api/*"]}}]}`, nil, false},
		{"notPaths other", `{to: [{operation: {notPaths: ["/admin*"]}}]}`, nil, true},

		{"operation fields are ANDed", `{to: [{operation: {methods: ["GET"], paths: ["/admin"]}}]}`, nil, false},
		{"operations are ORed", `{to: [{operation: {methods: ["POST"]}}, {operation: {paths: ["/api/*"]}}]}`, nil, true},
		{"from and to are ANDed", `{from: [{source: {namespaces: ["client"]}}], to: [{operation: {methods: ["POST"]}}]}`, nil, false},
	})
}

func TestConditions(t *testing.T) {
	twoValues := func(r *mesh.Request) { r.Headers = http.Header{"X-Env": {"prod", "canary"}} }
	runFieldCases(t, []fieldCase{
		{"header exact", `{when: [{key: "request.headers[x-env]", values: ["prod"]}]}`, nil, true},
		{"header name case-insensitive", `{when: [{key: "request.headers[X-ENV]", values: ["prod"]}]}`, nil, true},
		{"header other", `{when: [{key: "request.headers[x-env]", values: ["dev"]}]}`, nil, false},
		{"header prefix", `{when: [{key: "request.headers[x-env]", values: ["pr*"]}]}`, nil, true},
		{"header value case-sensitive", `{when: [{key: "request.headers[x-env]", values: ["PROD"]}]}`, nil, false},
		{"header presence", `{when: [{key: "request.headers[x-env]", values: ["*"]}]}`, nil, true},
		{"header presence empty value", `{when: [{key: "request.headers[x-env]", values: ["*"]}]}`, func(r *mesh.Request) { r.Headers = http.Header{"X-Env": {""}} }, true},
		{"header absent", `{when: [{key: "request.headers[x-missing]", values: ["*"]}]}`, nil, false},
		{"header notValues absent", `{when: [{key: "request.headers[x-missing]", notValues: ["x"]}]}`, nil, true},
		{"header notValues listed", `{when: [{key: "request.headers[x-env]", notValues: ["prod"]}]}`, nil, false},
		{"header repeated joined", `{when: [{key: "request.headers[x-env]", values: ["prod,canary"]}]}`, twoValues, true},
		{"header repeated single value", `{when: [{key: "request.headers[x-env]", values: ["canary"]}]}`, twoValues, false},
		{"header non-canonical map key", `{when: [{key: "request.headers[x-env]", values: ["prod"]}]}`, func(r *mesh.Request) { r.Headers = http.Header{"x-env": {"prod"}} }, true},
		{"header host", `{when: [{key: "request.headers[host]", values: ["api.example.com"]}]}`, nil, true},
		{"header :authority", `{when: [{key: "request.headers[:authority]", values: ["*.example.com"]}]}`, nil, true},
		{"header :method", `{when: [{key: "request.headers[:method]", values: ["GET"]}]}`, nil, true},

		{"source.ip", `{when: [{key: source.ip, values: ["10.0.0.0/16"]}]}`, nil, true},
		{"source.ip other", `{when: [{key: source.ip, values: ["10.1.0.0/16"]}]}`, nil, false},
		{"source.ip notValues", `{when: [{key: source.ip, notValues: ["10.0.0.5"]}]}`, nil, false},
		{"remote.ip", `{when: [{key: remote.ip, values: ["203.0.113.7"]}]}`, func(r *mesh.Request) { r.RemoteIP = netip.MustParseAddr("203.0.113.7") }, true},
		{"source.namespace", `{when: [{key: source.namespace, values: ["client"]}]}`, nil, true},
		{"source.namespace plaintext", `{when: [{key: source.namespace, values: ["client"]}]}`, plaintext, false},
		{"source.principal", `{when: [{key: source.principal, values: ["cluster.local/ns/client/*"]}]}`, nil, true},
		{"source.principal notValues", `{when: [{key: source.principal, notValues: ["*"]}]}`, nil, false},
		{"destination.ip", `{when: [{key: destination.ip, values: ["10.0.1.0/24"]}]}`, nil, true},
		{"destination.ip other", `{when: [{key: destination.ip, values: ["10.0.2.0/24"]}]}`, nil, false},
		{"destination.port", `{when: [{key: destination.port, values: ["8080"]}]}`, nil, true},
		{"destination.port other", `{when: [{key: destination.port, values: ["80"]}]}`, nil, false},
		{"connection.sni", `{when: [{key: connection.sni, values: ["*.svc.cluster.local"]}]}`, nil, true},
		{"connection.sni other", `{when: [{key: connection.sni, values: ["example.com"]}]}`, nil, false},

		{"request.auth.principal", `{when: [{key: request.auth.principal, values: ["https://issuer.example/alice"]}]}`, withAlice, true},
		{"request.auth.principal no token", `{when: [{key: request.auth.principal, values: ["*"]}]}`, nil, false},
		{"request.auth.audiences", `{when: [{key: request.auth.audiences, values: ["mobile"]}]}`, withAlice, true},
		{"request.auth.audiences other", `{when: [{key: request.auth.audiences, values: ["api"]}]}`, withAlice, false},
		{"request.auth.presenter", `{when: [{key: request.auth.presenter, values: ["web-*"]}]}`, withAlice, true},
		{"request.auth.presenter other", `{when: [{key: request.auth.presenter, values: ["cli"]}]}`, withAlice, false},
		{"claims string", `{when: [{key: "request.auth.claims[role]", values: ["admin"]}]}`, withAlice, true},
		{"claims string other", `{when: [{key: "request.auth.claims[role]", values: ["viewer"]}]}`, withAlice, false},
		{"claims list element", `{when: [{key: "request.auth.claims[groups]", values: ["admins"]}]}`, withAlice, true},
		{"claims list no element", `{when: [{key: "request.auth.claims[groups]", values: ["ops"]}]}`, withAlice, false},
		{"claims nested", `{when: [{key: "request.auth.claims[org][team]", values: ["sec*"]}]}`, withAlice, true},
		{"claims nested number never matches", `{when: [{key: "request.auth.claims[org][size]", values: ["12"]}]}`, withAlice, false},
		{"claims missing notValues", `{when: [{key: "request.auth.claims[missing]", notValues: ["x"]}]}`, withAlice, true},
		{"claims no token", `{when: [{key: "request.auth.claims[role]", values: ["admin"]}]}`, nil, false},
		{"claims notValues listed", `{when: [{key: "request.auth.claims[groups]", notValues: ["dev"]}]}`, withAlice, false},

		{"when conditions are ANDed", `{when: [{key: source.namespace, values: ["client"]}, {key: destination.port, values: ["80"]}]}`, nil, false},
		{"values and notValues together", `{when: [{key: "request.headers[x-env]", values: ["p*"], notValues: ["prod"]}]}`, nil, false},
	})
}

func TestOrder(t *testing.T) {
	deny := authz("foo", "deny-admin", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`)
	allowGet := authz("foo", "allow-get", `{action: ALLOW, rules: [{to: [{operation: {methods: ["POST"]}}]}, {to: [{operation: {methods: ["GET"]}}]}]}`)
	allowNone := authz("foo", "allow-none", `{action: ALLOW, rules: [{to: [{operation: {methods: ["PUT"]}}]}]}`)
	custom := authz("foo", "ext", `{action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {paths: ["/ext*"]}}]}]}`)
	audit := authz("foo", "audit-all", `{action: AUDIT, rules: [{}]}`)
	path := func(p string) mesh.Request {
		r := httpRequest()
		r.Path = p
		return r
	}
	tests := []struct {
		name       string
		docs       []string
		req        mesh.Request
		allow      bool
		action     mesh.Action
		reason     string
		audit      bool
		customErr  bool
		allowNames []string
	}{
		{name: "no policy", req: httpRequest(), allow: true, reason: "allowed: no ALLOW policy applies"},
		{name: "deny wins over allow", docs: []string{deny, allowGet}, req: path("/admin/users"), action: mesh.ActionDeny,
			reason: "denied by AuthorizationPolicy foo/deny-admin (DENY) rule 0"},
		{name: "allow rule index", docs: []string{deny, allowGet}, req: httpRequest(), allow: true, action: mesh.ActionAllow,
			reason: "allowed by AuthorizationPolicy foo/allow-get (ALLOW) rule 1"},
		{name: "only deny policies", docs: []string{deny}, req: httpRequest(), allow: true, reason: "allowed: no ALLOW policy applies"},
		{name: "allow policies none match", docs: []string{allowNone, allowGet}, req: path("/x"), allow: true, action: mesh.ActionAllow},
		{name: "allow policies none match deny", docs: []string{allowNone, allowGet}, req: func() mesh.Request { r := httpRequest(); r.Method = "DELETE"; return r }(),
			reason: "denied: ALLOW policies apply (foo/allow-get, foo/allow-none) and none matches", allowNames: []string{"foo/allow-get", "foo/allow-none"}},
		{name: "custom denies before deny", docs: []string{custom, deny, allowGet}, req: path("/ext/admin"), action: mesh.ActionCustom, customErr: true,
			reason: "denied by AuthorizationPolicy foo/ext (CUSTOM) rule 0: CUSTOM action is not supported: extension providers are not implemented"},
		{name: "custom not matching falls through", docs: []string{custom, allowGet}, req: httpRequest(), allow: true, action: mesh.ActionAllow},
		{name: "audit marks allow", docs: []string{audit, allowGet}, req: httpRequest(), allow: true, action: mesh.ActionAllow, audit: true,
			reason: "allowed by AuthorizationPolicy foo/allow-get (ALLOW) rule 1; audited by AuthorizationPolicy foo/audit-all rule 0"},
		{name: "audit marks deny", docs: []string{audit, deny}, req: path("/admin"), action: mesh.ActionDeny, audit: true},
		{name: "audit alone allows", docs: []string{audit}, req: httpRequest(), allow: true, audit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{}, tc.docs...)
			d := e.Authorize(server, tc.req)
			if d.Allow != tc.allow || d.Action != tc.action || d.Audit != tc.audit {
				t.Fatalf("decision %+v (%s), want allow=%v action=%q audit=%v", d, d.Reason(), tc.allow, tc.action, tc.audit)
			}
			if tc.reason != "" && d.Reason() != tc.reason {
				t.Fatalf("reason %q, want %q", d.Reason(), tc.reason)
			}
			if tc.customErr != errors.Is(d.Err, mesh.ErrUnsupported) || tc.customErr != errors.Is(d.Err, mesh.ErrCustomAction) {
				t.Fatalf("Err = %v, want CUSTOM error: %v", d.Err, tc.customErr)
			}
			if tc.allowNames != nil {
				var got []string
				for _, p := range d.AllowPolicies {
					got = append(got, p.String())
				}
				if strings.Join(got, ",") != strings.Join(tc.allowNames, ",") {
					t.Fatalf("AllowPolicies = %v, want %v", got, tc.allowNames)
				}
			}
		})
	}
}

func TestEmptyRules(t *testing.T) {
	tests := []struct {
		name  string
		spec  string
		allow bool
	}{
		{"allow empty rule allows all", `{action: ALLOW, rules: [{}]}`, true},
		{"deny empty rule denies all", `{action: DENY, rules: [{}]}`, false},
		{"allow nothing", `{}`, false},
		{"allow empty rules list", `{action: ALLOW, rules: []}`, false},
		{"deny without rules matches nothing", `{action: DENY}`, true},
		{"audit without rules audits nothing", `{action: AUDIT}`, true},
		{"custom without rules matches nothing", `{action: CUSTOM, provider: {name: x}}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{}, authz("foo", "p", tc.spec))
			for _, r := range []mesh.Request{httpRequest(), tcpConn(9000)} {
				d := e.Authorize(server, r)
				if d.Allow != tc.allow || d.Audit {
					t.Fatalf("HTTP=%v: %s, want allow=%v and no audit", r.HTTP, d.Reason(), tc.allow)
				}
			}
		})
	}
}

func TestDryRun(t *testing.T) {
	e := mustEngine(t, mesh.Options{}, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: dry, namespace: foo, annotations: {istio.io/dry-run: "true"}}
spec: {action: DENY, rules: [{}]}
`)
	d := e.Authorize(server, httpRequest())
	if !d.Allow {
		t.Fatalf("a dry-run DENY must not deny: %s", d.Reason())
	}
	tr := e.Explain(server, httpRequest())
	if len(tr.Policies) != 1 || !tr.Policies[0].DryRun || tr.Policies[0].Matched != 0 {
		t.Fatalf("trace must show the dry-run policy matching: %+v", tr.Policies)
	}
	if !strings.Contains(tr.String(), "DENY dry-run foo/dry") {
		t.Fatalf("trace text lacks the dry-run policy:\n%s", tr)
	}
}

func TestScopes(t *testing.T) {
	other := mesh.Workload{Namespace: "bar", Labels: map[string]string{"app": "api"}}
	gw := mesh.Workload{Namespace: "foo", Labels: map[string]string{mesh.GatewayNameLabel: "edge"}}
	denyAll := `{action: DENY, rules: [{}]}`
	tests := []struct {
		name   string
		opts   mesh.Options
		docs   []string
		denied map[string]bool // workload name -> denied
	}{
		{"namespace-wide", mesh.Options{}, []string{authz("foo", "p", denyAll)}, map[string]bool{"server": true, "other": false, "gw": true}},
		{"selector", mesh.Options{}, []string{authz("foo", "p", `{selector: {matchLabels: {app: api}}, action: DENY, rules: [{}]}`)},
			map[string]bool{"server": true, "other": false, "gw": false}},
		{"selector all labels", mesh.Options{}, []string{authz("foo", "p", `{selector: {matchLabels: {app: api, version: v2}}, action: DENY, rules: [{}]}`)},
			map[string]bool{"server": false, "other": false, "gw": false}},
		{"empty selector is namespace-wide", mesh.Options{}, []string{authz("foo", "p", `{selector: {}, action: DENY, rules: [{}]}`)},
			map[string]bool{"server": true, "other": false, "gw": true}},
		{"root namespace", mesh.Options{}, []string{authz("istio-system", "p", denyAll)}, map[string]bool{"server": true, "other": true, "gw": true}},
		{"root namespace selector", mesh.Options{}, []string{authz("istio-system", "p", `{selector: {matchLabels: {app: api}}, action: DENY, rules: [{}]}`)},
			map[string]bool{"server": true, "other": true, "gw": false}},
		{"custom root namespace", mesh.Options{RootNamespace: "mesh-root"}, []string{authz("mesh-root", "p", denyAll), authz("istio-system", "q", `{action: DENY, rules: [{}]}`)},
			map[string]bool{"server": true, "other": true, "gw": true}},
		{"istio-system is not root when configured otherwise", mesh.Options{RootNamespace: "mesh-root"}, []string{authz("istio-system", "q", denyAll)},
			map[string]bool{"server": false, "other": false, "gw": false}},
		{"targetRef gateway", mesh.Options{}, []string{authz("foo", "p", `{targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: edge}, action: DENY, rules: [{}]}`)},
			map[string]bool{"server": false, "other": false, "gw": true}},
		{"targetRefs service", mesh.Options{Targets: mesh.TargetResolverFunc(func(r mesh.TargetRef) (map[string]string, bool) {
			if r.Kind == "Service" && r.Namespace == "foo" && r.Name == "api" {
				return map[string]string{"app": "api"}, true
			}
			return nil, false
		})}, []string{authz("foo", "p", `{targetRefs: [{kind: Service, name: api}], action: DENY, rules: [{}]}`)},
			map[string]bool{"server": true, "other": false, "gw": false}},
	}
	workloads := map[string]mesh.Workload{"server": server, "other": other, "gw": gw}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, tc.opts, tc.docs...)
			for name, w := range workloads {
				d := e.Authorize(w, httpRequest())
				if d.Allow == tc.denied[name] {
					t.Errorf("%s: %s, want denied=%v", name, d.Reason(), tc.denied[name])
				}
			}
		})
	}
}

func TestUnresolvedTargetRefs(t *testing.T) {
	notFound := mesh.TargetResolverFunc(func(mesh.TargetRef) (map[string]string, bool) { return nil, false })
	noSelector := mesh.TargetResolverFunc(func(mesh.TargetRef) (map[string]string, bool) { return map[string]string{}, true })
	spec := `{targetRefs: [{kind: Service, name: api}, {group: networking.istio.io, kind: ServiceEntry, name: ext}], action: DENY, rules: [{}]}`
	tests := []struct {
		name    string
		targets mesh.TargetResolver
		warning string
	}{
		{"no resolver", nil, "no Service resolver was configured"},
		{"not found", notFound, "Service.core foo/api not found"},
		{"service without selector", noSelector, "has no selector, so it selects no workloads"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{Targets: tc.targets}, authz("foo", "p", spec))
			if d := e.Authorize(server, httpRequest()); !d.Allow {
				t.Fatalf("an unbound policy must not apply: %s", d.Reason())
			}
			warns := strings.Join(e.Warnings(), "\n")
			if !strings.Contains(warns, tc.warning) || !strings.Contains(warns, "spec.targetRefs[1]") {
				t.Fatalf("warnings %q lack %q for both refs", warns, tc.warning)
			}
			tr := e.Explain(server, httpRequest())
			if len(tr.Skipped) != 1 || !strings.Contains(tr.Skipped[0].Why, tc.warning) {
				t.Fatalf("trace must explain why the policy is skipped: %+v", tr.Skipped)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{"unsupported targetRef kind", authz("foo", "p", `{targetRef: {group: gateway.networking.k8s.io, kind: GatewayClass, name: istio-waypoint}, rules: [{}]}`),
			"test.yaml:4: spec.targetRef: targetRef to GatewayClass.gateway.networking.k8s.io foo/istio-waypoint is not supported"},
		{"istio gateway kind", authz("foo", "p", `{targetRef: {group: networking.istio.io, kind: Gateway, name: gw}, rules: [{}]}`),
			"targetRef to Gateway.networking.istio.io foo/gw is not supported"},
		// The validator lets these through (reported as a validation gap);
		// Istio's CRD rejects wildcards in serviceAccounts.
		{"serviceAccounts wildcard", authz("foo", "p", `{rules: [{from: [{source: {serviceAccounts: ["client/*"]}}]}]}`),
			"spec.rules[0].from[0].source.serviceAccounts[0]: serviceAccounts take no wildcards"},
		{"nested header key", authz("foo", "p", `{rules: [{when: [{key: "request.headers[a][b]", values: ["x"]}]}]}`),
			"invalid header key"},
		{"bad claim key", authz("foo", "p", `{rules: [{when: [{key: "request.auth.claims[a]x[b]", values: ["x"]}]}]}`),
			"invalid claim key"},
		{"inline jwks without usable key", doc("RequestAuthentication", "foo", "r", `{jwtRules: [{issuer: a, jwks: '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'}]}`),
			"spec.jwtRules[0].jwks: parse jwks: no usable public signing key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mesh.NewEngine(decode(t, tc.doc), mesh.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestCustomWarning(t *testing.T) {
	e := mustEngine(t, mesh.Options{}, authz("foo", "ext", `{action: CUSTOM, provider: {name: opa}, rules: [{}]}`))
	if w := strings.Join(e.Warnings(), "\n"); !strings.Contains(w, "AuthorizationPolicy/foo/ext: CUSTOM action is not supported") {
		t.Fatalf("warnings %q must name the CUSTOM policy", w)
	}
}

// TestTCP follows Istio's "TCP Traffic" task step by step, then covers the
// other HTTP-only attributes.
func TestTCP(t *testing.T) {
	tests := []struct {
		name string
		spec string
		// port -> allowed
		want map[uint16]bool
	}{
		{"allow ports", `{action: ALLOW, rules: [{to: [{operation: {ports: ["9000", "9001"]}}]}]}`, map[uint16]bool{9000: true, 9001: true, 9002: false}},
		{"allow with methods never matches tcp", `{action: ALLOW, rules: [{to: [{operation: {methods: ["GET"], ports: ["9000"]}}]}]}`, map[uint16]bool{9000: false, 9001: false}},
		{"deny with methods denies all tcp", `{action: DENY, rules: [{to: [{operation: {methods: ["GET"]}}]}]}`, map[uint16]bool{9000: false, 9001: false}},
		{"deny with methods and ports", `{action: DENY, rules: [{to: [{operation: {methods: ["GET"], ports: ["9000"]}}]}]}`, map[uint16]bool{9000: false, 9001: true}},
		{"deny requestPrincipals ignored", `{action: DENY, rules: [{from: [{source: {requestPrincipals: ["*"]}}], to: [{operation: {ports: ["9000"]}}]}]}`, map[uint16]bool{9000: false, 9001: true}},
		{"deny notRequestPrincipals ignored", `{action: DENY, rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]}`, map[uint16]bool{9000: false}},
		{"deny header condition ignored", `{action: DENY, rules: [{when: [{key: "request.headers[x-a]", values: ["b"]}, {key: destination.port, values: ["9001"]}]}]}`, map[uint16]bool{9000: true, 9001: false}},
		{"deny claims and principal", `{action: DENY, rules: [{from: [{source: {principals: ["cluster.local/ns/other/sa/x"]}}], when: [{key: "request.auth.claims[a]", values: ["b"]}]}]}`, map[uint16]bool{9000: true}},
		{"allow claim condition never matches tcp", `{action: ALLOW, rules: [{when: [{key: "request.auth.claims[a]", values: ["b"]}]}, {to: [{operation: {ports: ["9001"]}}]}]}`, map[uint16]bool{9000: false, 9001: true}},
		{"allow hosts never matches tcp", `{action: ALLOW, rules: [{to: [{operation: {notHosts: ["x"]}}]}]}`, map[uint16]bool{9000: false}},
		{"allow principals works on tcp", `{action: ALLOW, rules: [{from: [{source: {principals: ["cluster.local/ns/client/sa/curl"]}}]}]}`, map[uint16]bool{9000: true}},
		{"allow sni works on tcp", `{action: ALLOW, rules: [{when: [{key: connection.sni, values: ["db.example"]}]}]}`, map[uint16]bool{9000: false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{}, authz("foo", "tcp-policy", tc.spec))
			for port, want := range tc.want {
				d := e.Authorize(server, tcpConn(port))
				if d.Allow != want {
					t.Errorf("port %d: %s, want allowed=%v", port, d.Reason(), want)
				}
			}
		})
	}
}

func TestTCPAuditAndCustomWiden(t *testing.T) {
	e := mustEngine(t, mesh.Options{},
		authz("foo", "audit", `{action: AUDIT, rules: [{to: [{operation: {paths: ["/x"]}}]}]}`),
		authz("foo", "ext", `{action: CUSTOM, provider: {name: opa}, rules: [{to: [{operation: {methods: ["POST"], ports: ["9000"]}}]}]}`))
	d := e.Authorize(server, tcpConn(9000))
	if d.Allow || d.Action != mesh.ActionCustom || !d.Audit {
		t.Fatalf("TCP to 9000: %s; want denied by CUSTOM (HTTP fields ignored) and audited", d.Reason())
	}
	d = e.Authorize(server, tcpConn(9001))
	if !d.Allow || !d.Audit {
		t.Fatalf("TCP to 9001: %s; want allowed and audited", d.Reason())
	}
	r := httpRequest()
	r.DestinationPort = 9000
	if d := e.Authorize(server, r); !d.Allow || d.Audit {
		t.Fatalf("HTTP GET /api to 9000: %s; want allowed, not audited", d.Reason())
	}
}

func TestViewDoesNotAllocate(t *testing.T) {
	e := mustEngine(t, mesh.Options{},
		authz("foo", "deny", `{action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`),
		authz("foo", "allow", `{rules: [{from: [{source: {namespaces: ["client"]}}], to: [{operation: {methods: ["GET"], paths: ["/api/*"]}}], when: [{key: "request.headers[x-env]", values: ["prod"]}]}]}`))
	v := e.Workload(server)
	r := httpRequest()
	allocs := testing.AllocsPerRun(100, func() {
		if d := v.Authorize(r); !d.Allow {
			t.Fatal("want allowed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Authorize allocates %.0f times per request", allocs)
	}
}
