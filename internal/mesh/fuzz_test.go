package mesh_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/resource"
)

// object wraps a policy built in Go, bypassing the decoder: the fuzzer
// must reach the evaluator with strings validation would have refused.
func object(kind, name string, obj any) *resource.Object {
	return &resource.Object{Source: resource.Source{File: "fuzz", Line: 1}, APIVersion: "security.istio.io/v1", Kind: kind, Namespace: "foo", Name: name, Obj: obj}
}

func authzObject(name, action string, rules []resource.AuthzRule) *resource.Object {
	return object("AuthorizationPolicy", name, &resource.AuthorizationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "foo"},
		Spec:       resource.AuthorizationPolicySpec{Action: action, Rules: rules},
	})
}

// FuzzAuthorize builds policies from arbitrary strings and decides an
// arbitrary request. Invariants: nothing panics; a DENY that matches on
// its own still denies when ALLOW and AUDIT policies are added; a DENY
// with an empty rule denies everything; Explain decides as Authorize does
// and marks the deciding rule as matched; an ALLOW rule with HTTP-only
// fields never allows a TCP connection.
func FuzzAuthorize(f *testing.F) {
	// Plain values that match the seed request.
	f.Add("cluster.local/ns/client/sa/curl", "/api/*", "cluster.local/ns/client/sa/curl", "/api/v1", "GET", "prod", true, uint16(8080))
	// Presence and suffix patterns; a plaintext request.
	f.Add("*", "*/v1", "", "/x/v1", "POST", "", true, uint16(80))
	// The same on a TCP connection: HTTP-only fields decide the outcome.
	f.Add("*", "/admin*", "cluster.local/ns/a/sa/b", "", "", "", false, uint16(9000))
	// Near misses: '*' in the middle, lone slash, empty strings.
	f.Add("a*b", "/", "a*b", "/", "a*b", "a*b", true, uint16(0))
	f.Add("", "", "", "", "", "", false, uint16(65535))
	// Bracket soup for the claim key, and a principal that is all slashes.
	f.Add("][", "[a][b]", "////", "?#", "G", ",", true, uint16(1))
	f.Fuzz(func(t *testing.T, p1, p2, principal, path, method, header string, isHTTP bool, port uint16) {
		allow := authzObject("allow", "ALLOW", []resource.AuthzRule{{
			From: []resource.AuthzFrom{{Source: &resource.AuthzSource{Principals: []string{p1}, NotNamespaces: []string{p2}}}},
			To:   []resource.AuthzTo{{Operation: &resource.AuthzOperation{Paths: []string{p1}, Methods: []string{p2}, Hosts: []string{p1}}}},
			When: []resource.AuthzCondition{
				{Key: "request.headers[x-a]", Values: []string{p2}},
				{Key: "request.auth.claims[" + p1 + "]", NotValues: []string{p2}},
			},
		}, {
			From: []resource.AuthzFrom{{Source: &resource.AuthzSource{NotRequestPrincipals: []string{p2}, Namespaces: []string{p1}}}},
		}})
		deny := authzObject("deny", "DENY", []resource.AuthzRule{{
			From: []resource.AuthzFrom{{Source: &resource.AuthzSource{Principals: []string{p2}}}},
			To:   []resource.AuthzTo{{Operation: &resource.AuthzOperation{NotPaths: []string{p1}}}},
		}})
		audit := authzObject("audit", "AUDIT", []resource.AuthzRule{{To: []resource.AuthzTo{{Operation: &resource.AuthzOperation{Methods: []string{p1}}}}}})
		denyAll := authzObject("deny-all", "DENY", []resource.AuthzRule{{}})

		r := mesh.Request{
			HTTP:            isHTTP,
			SourcePrincipal: principal,
			SourceIP:        netip.MustParseAddr("10.0.0.1"),
			DestinationPort: port,
			Method:          method,
			Path:            path,
			Host:            p2,
			Headers:         http.Header{"X-A": {header}},
			Auth:            &mesh.AuthResult{Authenticated: principal != "", Issuer: principal, Subject: path, Claims: map[string]any{p1: header}},
		}
		all, err := mesh.NewEngine([]*resource.Object{allow, deny, audit}, mesh.Options{})
		if err != nil {
			return // strings a policy cannot hold (a claim key with brackets)
		}
		onlyDeny, err := mesh.NewEngine([]*resource.Object{deny}, mesh.Options{})
		if err != nil {
			t.Fatalf("the DENY policy alone failed to build: %v", err)
		}
		d := all.Authorize(server, r)
		_ = d.Reason()
		if dd := onlyDeny.Authorize(server, r); !dd.Allow {
			if d.Allow || d.Action != mesh.ActionDeny || d.Policy != dd.Policy {
				t.Fatalf("DENY matched alone (%s) but not with the others (%s)", dd.Reason(), d.Reason())
			}
		}
		if !r.HTTP && d.Action == mesh.ActionAllow {
			// Both ALLOW rules use HTTP-only fields.
			t.Fatalf("an ALLOW rule with HTTP-only fields allowed a TCP connection: %s", d.Reason())
		}
		tr := all.Explain(server, r)
		if tr.Decision.Allow != d.Allow || tr.Decision.Action != d.Action || tr.Decision.Policy != d.Policy || tr.Decision.Rule != d.Rule || tr.Decision.Audit != d.Audit {
			t.Fatalf("Explain decided %s, Authorize %s", tr.Decision.Reason(), d.Reason())
		}
		if d.Action != "" {
			found := false
			for _, p := range tr.Policies {
				if p.Policy == d.Policy && p.Action == d.Action && d.Rule < len(p.Rules) && p.Rules[d.Rule].Matched {
					found = true
				}
			}
			if !found {
				t.Fatalf("trace does not show the deciding rule as matched: %s\n%s", d.Reason(), tr)
			}
		}
		_ = tr.String()
		withDenyAll, err := mesh.NewEngine([]*resource.Object{allow, deny, audit, denyAll}, mesh.Options{})
		if err != nil {
			t.Fatalf("adding an empty DENY rule broke the build: %v", err)
		}
		if d := withDenyAll.Authorize(server, r); d.Allow {
			t.Fatalf("an empty DENY rule must deny everything: %s", d.Reason())
		}
	})
}

// FuzzStringMatch checks Istio's string match against its definition.
func FuzzStringMatch(f *testing.F) {
	f.Add("abc", "abc", false)   // exact
	f.Add("abc*", "abcd", false) // prefix
	f.Add("*abc", "xabc", false) // suffix
	f.Add("*", "", false)        // presence on empty
	f.Add("AbC*", "aBcD", true)  // folded prefix
	f.Add("a*b", "ab", false)    // '*' in the middle is literal
	f.Add("**", "*", false)      // two stars: suffix "*"
	f.Add("\xff*", "\xff", true) // invalid UTF-8
	f.Fuzz(func(t *testing.T, pattern, value string, fold bool) {
		m := mesh.ParseStringMatch(pattern, fold)
		got := m.Match(value)
		norm := func(s string) string {
			if !fold {
				return s
			}
			b := []byte(s)
			for i, c := range b {
				if 'A' <= c && c <= 'Z' {
					b[i] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
		p, v := norm(pattern), norm(value)
		var want bool
		switch {
		case pattern == "*":
			want = value != ""
		case strings.HasPrefix(pattern, "*"):
			want = strings.HasSuffix(v, p[1:])
		case strings.HasSuffix(pattern, "*"):
			want = strings.HasPrefix(v, p[:len(p)-1])
		default:
			want = v == p
		}
		if got != want {
			t.Fatalf("%q (fold %v) on %q = %v, want %v", pattern, fold, value, got, want)
		}
		if m.String() != pattern {
			t.Fatalf("String() = %q, want %q", m.String(), pattern)
		}
	})
}

// FuzzNormalizePath checks invariants of path normalization: only %00 is
// an error; the query is kept as is; a normalized absolute path has no
// dot segments and no backslashes, and with merging no empty segments.
func FuzzNormalizePath(f *testing.F) {
	f.Add("/a/b/../c?x=1")          // dot segments and a query
	f.Add("/%2e%2e/%2E/admin")      // encoded dots
	f.Add("/a%2f..%5c..//b")        // encoded slashes
	f.Add("/%00")                   // rejected
	f.Add("\\a\\..\\b")             // backslashes only
	f.Add("/%%32e%%32e/x")          // decoding that creates a new escape
	f.Add("")                       // empty
	f.Add("/..?/..")                // dot segment in the query stays
	f.Add("/a/.%2e/b/%252e%252e/c") // mixed and double encoding
	f.Fuzz(func(t *testing.T, in string) {
		for _, mode := range []mesh.PathNormalization{mesh.NormalizeBase, mesh.NormalizeNone, mesh.NormalizeMergeSlashes, mesh.NormalizeDecodeAndMergeSlashes} {
			out, err := mesh.NormalizePath(in, mode)
			path, query, hasQuery := strings.Cut(in, "?")
			if strings.Contains(strings.ToLower(path), "%00") {
				if err == nil {
					t.Fatalf("mode %d: %q containing %%00 was accepted", mode, in)
				}
				continue
			}
			if err != nil {
				t.Fatalf("mode %d: %q: %v", mode, in, err)
			}
			if hasQuery && !strings.HasSuffix(out, "?"+query) {
				t.Fatalf("mode %d: query of %q changed: %q", mode, in, out)
			}
			if mode == mesh.NormalizeNone || !(strings.HasPrefix(path, "/") || strings.HasPrefix(path, "\\")) {
				continue
			}
			outPath, _, _ := strings.Cut(out, "?")
			if !strings.HasPrefix(outPath, "/") || strings.Contains(outPath, "\\") {
				t.Fatalf("mode %d: %q normalized to %q", mode, in, out)
			}
			for _, seg := range strings.Split(outPath[1:], "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("mode %d: %q normalized to %q, which has a dot segment", mode, in, out)
				}
			}
			if mode != mesh.NormalizeBase && strings.Contains(outPath, "//") {
				t.Fatalf("mode %d: %q normalized to %q, which has //", mode, in, out)
			}
		}
	})
}

// FuzzAuthenticate feeds arbitrary tokens to every token location.
// Invariants: nothing panics; the answer is 200 unauthenticated or 401
// with a JWTError; a token nobody signed never authenticates.
func FuzzAuthenticate(f *testing.F) {
	iss := newIssuer(f, "https://issuer.example", "k1")
	e := mustEngine(f, mesh.Options{Now: clock}, reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(f, iss, `fromHeaders: [{name: authorization, prefix: "Bearer "}, {name: x-jwt}], fromParams: [t], fromCookies: [c]`)+"]}"))
	good := iss.token(f, nil)
	f.Add(good[:len(good)-4] + "AAAA")                // a real token with a broken signature
	f.Add(tamper(f, good))                            // a real signature over another payload
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")     // alg none
	f.Add("a.b.c")                                    // three parts, none valid
	f.Add("..")                                       // empty parts
	f.Add("eyJhbGciOiJFUzI1NiJ9.bnVsbA.c2ln")         // payload "null"
	f.Add("eyJhbGciOiJFUzI1NiJ9.WzEsMl0.c2ln")        // payload a JSON array
	f.Add(strings.Repeat("eyJhbGciOiJFUzI1NiJ9.", 3)) // too many dots
	f.Fuzz(func(t *testing.T, tok string) {
		for where := range 4 {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			switch where {
			case 0:
				r.Header.Set("Authorization", "Bearer "+tok)
			case 1:
				r.Header.Set("X-Jwt", tok)
			case 2:
				r.URL.RawQuery = "t=" + tok
			case 3:
				r.Header.Set("Cookie", "c="+tok)
			}
			res, status, err := e.Authenticate(server, r)
			switch {
			case res.Authenticated:
				t.Fatalf("location %d: forged token %q authenticated", where, tok)
			case status == http.StatusOK && err != nil, status == http.StatusUnauthorized && err == nil, status != http.StatusOK && status != http.StatusUnauthorized:
				t.Fatalf("location %d: status %d with err %v", where, status, err)
			}
		}
	})
}
