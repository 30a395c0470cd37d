package mesh_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/rampartsec/rampart/internal/mesh"
)

// t0 is the fixed "now" of the JWT tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return t0 }

// testIssuer signs tokens with a key generated for the test.
type testIssuer struct {
	iss string
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func newIssuer(t testing.TB, iss, kid string) *testIssuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{iss: iss, kid: kid, alg: jose.ES256, key: k}
}

func newRSAIssuer(t testing.TB, iss, kid string) *testIssuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{iss: iss, kid: kid, alg: jose.RS256, key: k}
}

// jwks is the issuer's public key set as a JSON document.
func (i *testIssuer) jwks(t testing.TB) string {
	t.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.key.Public(), KeyID: i.kid, Algorithm: string(i.alg), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// token signs claims; iss defaults to the issuer, exp to an hour after t0.
func (i *testIssuer) token(t testing.TB, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": i.iss, "sub": "alice", "exp": t0.Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: i.alg, Key: jose.JSONWebKey{Key: i.key, KeyID: i.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reqAuthn(ns, name, spec string) string { return doc("RequestAuthentication", ns, name, spec) }

// jwtRule renders a jwtRules entry with inline keys.
func inlineRule(t testing.TB, i *testIssuer, extra string) string {
	t.Helper()
	jwks, err := json.Marshal(i.jwks(t))
	if err != nil {
		t.Fatal(err)
	}
	r := `{issuer: "` + i.iss + `", jwks: ` + string(jwks)
	if extra != "" {
		r += ", " + extra
	}
	return r + "}"
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestAuthenticate(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	rsaIss := newRSAIssuer(t, "https://rsa.example", "r1")
	other := newIssuer(t, "https://other.example", "k1")
	forger := newIssuer(t, "https://issuer.example", "k1") // same iss and kid, different key
	policy := reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(t, iss, `audiences: ["web", "api"]`)+", "+inlineRule(t, rsaIss, "")+"]}")
	e := mustEngine(t, mesh.Options{Now: clock}, policy)

	tests := []struct {
		name    string
		req     *http.Request
		status  int
		reason  string // JWTError.Reason when rejected
		subject string // when authenticated
	}{
		{"valid", bearer(iss.token(t, map[string]any{"aud": []string{"web", "x"}, "azp": "web-client"})), 200, "", "alice"},
		{"valid rsa", bearer(rsaIss.token(t, map[string]any{"sub": "bob"})), 200, "", "bob"},
		{"missing token", httptest.NewRequest(http.MethodGet, "/api", nil), 200, "", ""},
		{"other scheme is no token", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "Basic YWxpY2U6cHc=")
			return r
		}(), 200, "", ""},
		{"bearer prefix case-insensitive", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "bearer "+iss.token(t, map[string]any{"aud": "api"}))
			return r
		}(), 200, "", "alice"},
		{"access_token param by default", httptest.NewRequest(http.MethodGet, "/api?access_token="+rsaIss.token(t, nil), nil), 200, "", "alice"},
		{"expired", bearer(iss.token(t, map[string]any{"aud": "web", "exp": t0.Add(-2 * time.Minute).Unix()})), 401, "Jwt is expired", ""},
		{"expired within clock skew", bearer(iss.token(t, map[string]any{"aud": "web", "exp": t0.Add(-30 * time.Second).Unix()})), 200, "", "alice"},
		{"no exp is valid", bearer(rsaIss.token(t, map[string]any{"exp": nil})), 200, "", "alice"},
		{"not yet valid", bearer(iss.token(t, map[string]any{"aud": "web", "nbf": t0.Add(5 * time.Minute).Unix()})), 401, "Jwt not yet valid", ""},
		{"exp not a number", bearer(iss.token(t, map[string]any{"aud": "web", "exp": "tomorrow"})), 401, "Jwt payload is an invalid JSON", ""},
		{"wrong issuer", bearer(other.token(t, nil)), 401, "Jwt issuer is not configured", ""},
		{"no issuer", bearer(iss.token(t, map[string]any{"iss": nil})), 401, "Jwt issuer is not configured", ""},
		{"wrong audience", bearer(iss.token(t, map[string]any{"aud": "mobile"})), 401, "Audiences in Jwt are not allowed", ""},
		{"no audience", bearer(iss.token(t, nil)), 401, "Audiences in Jwt are not allowed", ""},
		{"no audience required", bearer(rsaIss.token(t, map[string]any{"aud": "anything"})), 200, "", "alice"},
		{"bad signature", bearer(forger.token(t, map[string]any{"aud": "web"})), 401, "Jwt verification fails", ""},
		{"tampered payload", bearer(tamper(t, iss.token(t, map[string]any{"aud": "web"}))), 401, "Jwt verification fails", ""},
		{"unknown kid", bearer((&testIssuer{iss: iss.iss, kid: "k9", alg: jose.ES256, key: iss.key}).token(t, map[string]any{"aud": "web"})), 401, "Jwks doesn't have key to match kid or alg from Jwt", ""},
		{"malformed", bearer("not-a-jwt"), 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", ""},
		{"three garbage parts", bearer("a.b.c"), 401, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", ""},
		{"alg none", bearer(unsigned(t, `{"alg":"none"}`, `{"iss":"https://issuer.example","sub":"alice"}`)), 401, "Jwt algorithm is not supported", ""},
		{"hmac rejected", bearer(hmacToken(t, iss.iss)), 401, "Jwt algorithm is not supported", ""},
		{"one valid and one invalid token", func() *http.Request {
			r := bearer(iss.token(t, map[string]any{"aud": "web"}))
			r.URL.RawQuery = "access_token=" + other.token(t, nil)
			return r
		}(), 401, "Jwt issuer is not configured", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, status, err := e.Authenticate(server, tc.req)
			if status != tc.status {
				t.Fatalf("status %d (err %v), want %d", status, err, tc.status)
			}
			if tc.status == 401 {
				var je *mesh.JWTError
				if !errors.As(err, &je) || !errors.Is(err, mesh.ErrJWTInvalid) || je.Reason != tc.reason {
					t.Fatalf("err = %#v, want JWTError %q", err, tc.reason)
				}
				if res.Authenticated {
					t.Fatal("a rejected request must not be authenticated")
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if res.Authenticated != (tc.subject != "") || res.Subject != tc.subject {
				t.Fatalf("result %+v, want subject %q", res, tc.subject)
			}
		})
	}
}

// tamper swaps the token's payload for one granting more, keeping the
// original signature.
func tamper(t testing.TB, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "alice", "admin", 1)))
	return strings.Join(parts, ".")
}

func unsigned(t testing.TB, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(payload)) + "."
}

func hmacToken(t testing.TB, iss string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(`{"iss":"` + iss + `","sub":"alice","aud":"web"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := obj.CompactSerialize()
	return s
}

func TestAuthResult(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	e := mustEngine(t, mesh.Options{Now: clock}, reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(t, iss, "")+"]}"))
	tok := iss.token(t, map[string]any{"aud": []string{"web", "api"}, "azp": "web-client", "groups": []string{"admins"}, "org": map[string]any{"team": "sec"}})
	res, status, err := e.Authenticate(server, bearer(tok))
	if err != nil || status != 200 {
		t.Fatalf("status %d err %v", status, err)
	}
	if res.Principal() != "https://issuer.example/alice" || res.Presenter != "web-client" || strings.Join(res.Audiences, ",") != "web,api" {
		t.Fatalf("result %+v", res)
	}
	if res.Policy.String() != "foo/jwt" {
		t.Fatalf("Policy = %s, want foo/jwt", res.Policy)
	}
	// Istio's forwardOriginalToken defaults to false: the token is removed.
	if strings.Join(res.RemoveHeaders, ",") != "Authorization" {
		t.Fatalf("RemoveHeaders = %v, want [Authorization]", res.RemoveHeaders)
	}
	// The result feeds authorization.
	ea := mustEngine(t, mesh.Options{}, authz("foo", "p", `{rules: [{from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}], when: [{key: "request.auth.claims[org][team]", values: ["sec"]}, {key: request.auth.audiences, values: ["api"]}]}]}`))
	r := httpRequest()
	r.Auth = &res
	if d := ea.Authorize(server, r); !d.Allow {
		t.Fatalf("authenticated request denied: %s", d.Reason())
	}
	if (*mesh.AuthResult)(nil).Principal() != "" {
		t.Fatal("a nil result has no principal")
	}
}

func TestTokenLocations(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	tok := iss.token(t, nil)
	tests := []struct {
		name  string
		extra string
		req   func() *http.Request
		authn bool
	}{
		{"custom header with prefix", `fromHeaders: [{name: x-jwt-assertion, prefix: "Token "}]`, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("X-Jwt-Assertion", "Token "+tok)
			return r
		}, true},
		{"custom header without its prefix", `fromHeaders: [{name: x-jwt-assertion, prefix: "Token "}]`, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("X-Jwt-Assertion", tok)
			return r
		}, false},
		{"custom header no prefix", `fromHeaders: [{name: x-jwt}]`, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("x-jwt", tok)
			return r
		}, true},
		{"default header not read when fromHeaders set", `fromHeaders: [{name: x-jwt}]`, func() *http.Request { return bearer(tok) }, false},
		{"fromParams", `fromParams: [token]`, func() *http.Request { return httptest.NewRequest(http.MethodGet, "/?a=1&token="+tok, nil) }, true},
		{"default param not read when fromParams set", `fromParams: [token]`, func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/?access_token="+tok, nil)
		}, false},
		{"fromCookies", `fromCookies: [session]`, func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.AddCookie(&http.Cookie{Name: "session", Value: tok})
			return r
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{Now: clock}, reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(t, iss, tc.extra)+"]}"))
			res, status, err := e.Authenticate(server, tc.req())
			if status != 200 || err != nil || res.Authenticated != tc.authn {
				t.Fatalf("status %d err %v authenticated %v, want %v", status, err, res.Authenticated, tc.authn)
			}
		})
	}
}

func TestHeaderOutputs(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	e := mustEngine(t, mesh.Options{Now: clock}, reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(t, iss,
		`forwardOriginalToken: true, outputPayloadToHeader: x-jwt-payload, outputClaimToHeaders: [{header: x-sub, claim: sub}, {header: x-team, claim: org.team}, {header: x-admin, claim: admin}, {header: x-missing, claim: nope}]`)+"]}"))
	tok := iss.token(t, map[string]any{"org": map[string]any{"team": "sec"}, "admin": true})

	res, _, err := e.Authenticate(server, bearer(tok))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, h := range res.SetHeaders {
		got[h.Name] = h.Value
	}
	if got["X-Jwt-Payload"] != strings.Split(tok, ".")[1] || got["X-Sub"] != "alice" || got["X-Team"] != "sec" || got["X-Admin"] != "true" || len(got) != 4 {
		t.Fatalf("SetHeaders = %v", got)
	}
	// forwardOriginalToken keeps Authorization; the output headers are
	// always removed first so a client cannot forge them.
	if strings.Join(res.RemoveHeaders, ",") != "X-Jwt-Payload,X-Sub,X-Team,X-Admin,X-Missing" {
		t.Fatalf("RemoveHeaders = %v", res.RemoveHeaders)
	}
	res, status, err := e.Authenticate(server, httptest.NewRequest(http.MethodGet, "/", nil))
	if status != 200 || err != nil || res.Authenticated || len(res.RemoveHeaders) != 5 {
		t.Fatalf("without a token: status %d err %v result %+v; want the output headers still removed", status, err, res)
	}
}

func TestRequestAuthnScopeAndCombination(t *testing.T) {
	a := newIssuer(t, "https://a.example", "a")
	b := newIssuer(t, "https://b.example", "b")
	e := mustEngine(t, mesh.Options{Now: clock},
		reqAuthn("istio-system", "mesh", "{jwtRules: ["+inlineRule(t, a, "")+"]}"),
		reqAuthn("foo", "api", "{selector: {matchLabels: {app: api}}, jwtRules: ["+inlineRule(t, b, "")+"]}"))
	web := mesh.Workload{Namespace: "foo", Labels: map[string]string{"app": "web"}}
	tests := []struct {
		w      mesh.Workload
		tok    string
		status int
	}{
		{server, a.token(t, nil), 200},
		{server, b.token(t, nil), 200},
		{web, a.token(t, nil), 200},
		{web, b.token(t, nil), 401},
	}
	for i, tc := range tests {
		res, status, _ := e.Authenticate(tc.w, bearer(tc.tok))
		if status != tc.status || (status == 200) != res.Authenticated {
			t.Errorf("case %d: status %d authenticated %v, want %d", i, status, res.Authenticated, tc.status)
		}
	}
	// A workload no RequestAuthentication selects ignores tokens entirely.
	none := mustEngine(t, mesh.Options{Now: clock})
	if res, status, err := none.Authenticate(server, bearer("garbage")); status != 200 || err != nil || res.Authenticated {
		t.Fatalf("no policy: status %d err %v result %+v", status, err, res)
	}
}

func TestExplainRequestAuthn(t *testing.T) {
	a := newIssuer(t, "https://a.example", "a")
	e := mustEngine(t, mesh.Options{Now: clock}, reqAuthn("foo", "jwt", "{jwtRules: ["+inlineRule(t, a, "")+"]}"))
	tr := e.Explain(server, httpRequest())
	if len(tr.RequestAuthn) != 1 || tr.RequestAuthn[0].String() != "foo/jwt" || !strings.Contains(tr.String(), "RequestAuthentication: foo/jwt") {
		t.Fatalf("trace %+v", tr)
	}
}
