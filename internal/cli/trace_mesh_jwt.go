package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/mesh"
)

// traceJWT is the token of --jwt or --jwt-file. Its claims are read
// without verification: RequestAuthentication verifies it, and when it
// cannot (keys behind a jwksUri, offline) the trace says so and goes on
// with these claims.
type traceJWT struct {
	raw    string
	flag   string // the flag that gave it, for messages
	claims map[string]any
}

// readJWT reads --jwt or --jwt-file. A token that is not a JWT at all is a
// usage error naming the flag; one that is a JWT but fails validation is
// the trace's business (401).
func readJWT(cmd *cobra.Command, o traceOpts) (*traceJWT, error) {
	fl := cmd.Flags()
	if fl.Changed("jwt") && fl.Changed("jwt-file") {
		return nil, UsageError("--jwt and --jwt-file: give the token once")
	}
	var t traceJWT
	switch {
	case fl.Changed("jwt"):
		t.flag, t.raw = "--jwt", strings.TrimSpace(o.jwt)
	case fl.Changed("jwt-file"):
		data, err := os.ReadFile(o.jwtFile)
		if err != nil {
			return nil, UsageError("--jwt-file: %v", err)
		}
		t.flag, t.raw = "--jwt-file "+o.jwtFile, strings.TrimSpace(string(data))
	default:
		return nil, nil
	}
	claims, err := decodeJWT(t.raw)
	if err != nil {
		return nil, UsageError("%s: unreadable JWT: %v", t.flag, err)
	}
	t.claims = claims
	return &t, nil
}

// decodeJWT checks the compact form (header.payload.signature, base64url)
// and returns the payload's claims, unverified.
func decodeJWT(tok string) (map[string]any, error) {
	if tok == "" {
		return nil, errors.New("empty token")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("want three base64url parts separated by dots (header.payload.signature), got %d", len(parts))
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		name := []string{"header", "payload"}[i]
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
		if err != nil {
			return nil, fmt.Errorf("%s is not base64url: %w", name, err)
		}
		if err := json.Unmarshal(b, dst); err != nil || *dst == nil {
			return nil, fmt.Errorf("%s is not a JSON object", name)
		}
	}
	if _, ok := header["alg"].(string); !ok {
		return nil, errors.New("header names no alg")
	}
	return claims, nil
}

// unverified is the authentication result the token would give if its
// signature verified: what the later layers assume when the keys could
// not be fetched.
func (t *traceJWT) unverified() *mesh.AuthResult {
	a := &mesh.AuthResult{Authenticated: true, Claims: t.claims}
	a.Issuer, _ = t.claims["iss"].(string)
	a.Subject, _ = t.claims["sub"].(string)
	a.Presenter, _ = t.claims["azp"].(string)
	switch aud := t.claims["aud"].(type) {
	case string:
		a.Audiences = []string{aud}
	case []any:
		for _, v := range aud {
			if s, ok := v.(string); ok {
				a.Audiences = append(a.Audiences, s)
			}
		}
	}
	return a
}

// errOffline is what the trace's JWKS client answers instead of fetching:
// trace reads its inputs and nothing else.
var errOffline = errors.New("rampart policy trace is offline and fetches nothing")

// offlineTransport refuses every request. The mesh engine's JWKS cache
// uses it in trace, so a jwksUri or an OpenID discovery document is never
// fetched and the failure is recognisable (errors.Is errOffline).
type offlineTransport struct{}

func (offlineTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, errOffline }

// offlineJWKS is a JWKS cache that never touches the network.
func offlineJWKS() *mesh.JWKSCache {
	return mesh.NewJWKSCache(mesh.JWKSOptions{Client: &http.Client{Transport: offlineTransport{}}})
}
