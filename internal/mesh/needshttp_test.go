package mesh_test

import (
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
)

// TestNeedsHTTP checks when the proxy must parse HTTP to decide: only when
// a policy that applies to the workload looks at an HTTP-only attribute or
// a RequestAuthentication applies.
func TestNeedsHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		docs []string
		want bool
	}{
		{"no policy", nil, false},
		{"principals only", []string{authz("foo", "p", `{rules: [{from: [{source: {principals: ["cluster.local/ns/a/sa/b"]}}]}]}`)}, false},
		{"ports only", []string{authz("foo", "p", `{rules: [{to: [{operation: {ports: ["8080"]}}]}]}`)}, false},
		{"paths", []string{authz("foo", "p", `{rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}`)}, true},
		{"deny on methods", []string{authz("foo", "p", `{action: DENY, rules: [{to: [{operation: {methods: ["POST"]}}]}]}`)}, true},
		{"header condition", []string{authz("foo", "p", `{rules: [{when: [{key: "request.headers[x-env]", values: ["prod"]}]}]}`)}, true},
		{"other namespace", []string{authz("bar", "p", `{rules: [{to: [{operation: {paths: ["/x"]}}]}]}`)}, false},
		{"request authentication", []string{doc("RequestAuthentication", "foo", "jwt", `{jwtRules: [{issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks"}]}`)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *mesh.Engine
			if len(tc.docs) == 0 {
				var err error
				if e, err = mesh.NewEngine(nil, mesh.Options{}); err != nil {
					t.Fatal(err)
				}
			} else {
				e = mustEngine(t, mesh.Options{}, tc.docs...)
			}
			if got := e.Workload(server).NeedsHTTP(); got != tc.want {
				t.Errorf("NeedsHTTP() = %v, want %v", got, tc.want)
			}
		})
	}
}
