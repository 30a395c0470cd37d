package meshnode_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/resource"
)

// TestAuthorizeHTTPJWT checks RequestAuthentication through the proxy's
// authorizer, as Istio answers: a valid token sets the request principal
// an AuthorizationPolicy can require, an invalid one is a 401 before any
// authorization, and a missing one passes authentication but not a policy
// that requires a request principal.
func TestAuthorizeHTTPJWT(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	token := func(sub string, exp time.Time) string {
		claims, _ := json.Marshal(map[string]any{"iss": "https://issuer.test", "sub": sub, "aud": "bank", "exp": exp.Unix()})
		jws, err := signer.Sign(claims)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jws.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	yaml := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  jwtRules: [{issuer: "https://issuer.test", audiences: [bank], jwks: '` + string(jwks) + `'}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: users-only, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  rules: [{from: [{source: {requestPrincipals: ["https://issuer.test/alice"]}}]}]
`
	objs, err := resource.DecodeBytes("jwt.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := mesh.NewEngine(objs, mesh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var a meshnode.Authorizer
	a.Update(meshnode.Snapshot{Mesh: eng, Repo: nil, Workloads: map[string]meshnode.Member{
		"shop/server": {Labels: map[string]string{"app": "server"}, ServiceAccount: "server", Mesh: true},
	}})
	req := func(authz string) proxy.Request {
		h := http.Header{}
		if authz != "" {
			h.Set("Authorization", authz)
		}
		return proxy.Request{Connection: conn("10.0.0.11", "spiffe://cluster.local/ns/shop/sa/client", 8080), Method: "GET", Host: "server", Path: "/", Header: h}
	}
	for _, tc := range []struct {
		name     string
		authz    string
		allow    bool
		status   int
		bodyPart string
	}{
		{"valid token for alice", "Bearer " + token("alice", time.Now().Add(time.Hour)), true, 0, ""},
		{"valid token for bob", "Bearer " + token("bob", time.Now().Add(time.Hour)), false, 0, ""},
		{"expired token", "Bearer " + token("alice", time.Now().Add(-time.Hour)), false, 401, "expired"},
		{"garbage token", "Bearer not.a.jwt", false, 401, "Jwt"},
		{"no token", "", false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.AuthorizeHTTP(req(tc.authz))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || d.Status != tc.status || !strings.Contains(d.Body, tc.bodyPart) {
				t.Errorf("AuthorizeHTTP = %+v, want allow=%v status=%d body containing %q", d, tc.allow, tc.status, tc.bodyPart)
			}
		})
	}
}
