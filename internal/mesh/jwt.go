package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/rampartsec/rampart/internal/resource"
)

// ClockSkew is the leeway on exp and nbf, Envoy's default
// clock_skew_seconds.
const ClockSkew = 60 * time.Second

// DefaultJWKSTimeout bounds a jwksUri fetch when a rule sets no timeout, as
// Istio's default does.
const DefaultJWKSTimeout = 5 * time.Second

// signatureAlgorithms are the JWS algorithms Rampart verifies: the
// asymmetric ones Envoy supports. HMAC is left out on purpose: a JWKS
// published for a mesh is public, so a symmetric key in it proves nothing.
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// AuthResult is the outcome of Authenticate: the authenticated token's
// identity and claims, and the header edits the proxy must make before
// forwarding the request (apply RemoveHeaders first, then SetHeaders).
type AuthResult struct {
	// Authenticated is true when a valid token was presented. A request
	// with no token is not rejected; it just has no request principal.
	Authenticated bool

	Issuer    string
	Subject   string
	Audiences []string // the aud claim, as a list
	Presenter string   // the azp claim
	Claims    map[string]any

	// Policy is the RequestAuthentication whose rule accepted the token.
	Policy PolicyRef

	// RemoveHeaders lists headers to delete: tokens that are not to be
	// forwarded (forwardOriginalToken false, Istio's default) and, always,
	// the headers outputPayloadToHeader and outputClaimToHeaders write, so
	// a client cannot forge them. SetHeaders lists headers to set.
	RemoveHeaders []string
	SetHeaders    []HeaderValue
}

// HeaderValue is one header to set.
type HeaderValue struct {
	Name  string
	Value string
}

// Principal returns Istio's request principal, "<iss>/<sub>", or "" when
// not authenticated.
func (a *AuthResult) Principal() string {
	if a == nil || !a.Authenticated {
		return ""
	}
	return a.Issuer + "/" + a.Subject
}

// locKind says where a token is looked for.
type locKind uint8

const (
	locHeader locKind = iota
	locParam
	locCookie
)

// tokenLocation is one place a token may be: a header (with an optional
// prefix such as "Bearer "), a query parameter or a cookie.
type tokenLocation struct {
	kind   locKind
	name   string // canonical header name, parameter or cookie name
	prefix string
}

func (l tokenLocation) String() string {
	switch l.kind {
	case locParam:
		return "query parameter " + l.name
	case locCookie:
		return "cookie " + l.name
	}
	if l.prefix != "" {
		return fmt.Sprintf("header %s (prefix %q)", l.name, l.prefix)
	}
	return "header " + l.name
}

// extract returns the token at this location. A header without the
// expected prefix holds no token, as in Envoy: "Authorization: Basic ..."
// leaves the request unauthenticated, not rejected.
func (l tokenLocation) extract(r *http.Request) (string, bool) {
	var v string
	switch l.kind {
	case locHeader:
		v = r.Header.Get(l.name)
		if l.prefix != "" {
			if len(v) < len(l.prefix) || !asciiEqualFold(v[:len(l.prefix)], l.prefix) {
				return "", false
			}
			v = v[len(l.prefix):]
		}
	case locParam:
		if r.URL == nil || r.URL.RawQuery == "" || !strings.Contains(r.URL.RawQuery, l.name) {
			return "", false
		}
		v = r.URL.Query().Get(l.name)
	case locCookie:
		c, err := r.Cookie(l.name)
		if err != nil {
			return "", false
		}
		v = c.Value
	}
	v = strings.TrimSpace(v)
	return v, v != ""
}

// defaultLocations are Envoy's when a rule names none: the Authorization
// header with prefix "Bearer " and the access_token query parameter.
var defaultLocations = []tokenLocation{
	{kind: locHeader, name: "Authorization", prefix: "Bearer "},
	{kind: locParam, name: "access_token"},
}

// jwtRule is one compiled jwtRules entry.
type jwtRule struct {
	ref           PolicyRef
	index         int
	issuer        string
	audiences     []string
	inline        *keySet
	uri           string
	timeout       time.Duration
	locations     []tokenLocation
	payloadHeader string
	forward       bool
	claimHeaders  []resource.ClaimToHeader
}

// requestAuthn is a compiled RequestAuthentication.
type requestAuthn struct {
	ref   PolicyRef
	scope scope
	rules []*jwtRule
}

func compileRequestAuthn(o *resource.Object, ra *resource.RequestAuthentication, res TargetResolver) (*requestAuthn, []string, resource.ErrorList) {
	c := &compiler{o: o}
	s := &ra.Spec
	p := &requestAuthn{ref: PolicyRef{Namespace: o.Namespace, Name: o.Name}}
	sc, warns, errs := buildScope(o, s.Selector, s.TargetRef, s.TargetRefs, res)
	p.scope = sc
	c.errs = append(c.errs, errs...)
	for i, r := range s.JWTRules {
		path := fmt.Sprintf("spec.jwtRules[%d]", i)
		jr := &jwtRule{
			ref:           p.ref,
			index:         i,
			issuer:        r.Issuer,
			audiences:     r.Audiences,
			uri:           r.JWKSURI,
			timeout:       DefaultJWKSTimeout,
			payloadHeader: textproto.CanonicalMIMEHeaderKey(r.OutputPayloadToHeader),
			forward:       r.ForwardOriginalToken,
		}
		// Header names are canonical from here on, so that requests do
		// not pay for it.
		for _, ch := range r.OutputClaimToHeaders {
			jr.claimHeaders = append(jr.claimHeaders, resource.ClaimToHeader{Header: textproto.CanonicalMIMEHeaderKey(ch.Header), Claim: ch.Claim})
		}
		if r.Issuer == "" {
			c.fail(path+".issuer", "issuer is required")
		}
		if r.JWKS != "" {
			ks, err := parseJWKS([]byte(r.JWKS))
			if err != nil {
				c.fail(path+".jwks", "%v", err)
			}
			jr.inline = ks
		} else if r.JWKSURI != "" {
			if u, err := url.Parse(r.JWKSURI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.fail(path+".jwksUri", "invalid jwksUri %q (want an http or https URL)", r.JWKSURI)
			}
		}
		if r.Timeout != "" {
			d, err := time.ParseDuration(r.Timeout)
			if err != nil || d <= 0 {
				c.fail(path+".timeout", "invalid duration %q", r.Timeout)
			}
			jr.timeout = d
		}
		for j, h := range r.FromHeaders {
			if h.Name == "" {
				c.fail(fmt.Sprintf("%s.fromHeaders[%d].name", path, j), "name is required")
				continue
			}
			jr.locations = append(jr.locations, tokenLocation{kind: locHeader, name: textproto.CanonicalMIMEHeaderKey(h.Name), prefix: h.Prefix})
		}
		for _, q := range r.FromParams {
			jr.locations = append(jr.locations, tokenLocation{kind: locParam, name: q})
		}
		for _, ck := range r.FromCookies {
			jr.locations = append(jr.locations, tokenLocation{kind: locCookie, name: ck})
		}
		if len(jr.locations) == 0 {
			jr.locations = defaultLocations
		}
		for j, ch := range r.OutputClaimToHeaders {
			if ch.Header == "" || ch.Claim == "" {
				c.fail(fmt.Sprintf("%s.outputClaimToHeaders[%d]", path, j), "header and claim are required")
			}
		}
		p.rules = append(p.rules, jr)
	}
	if len(c.errs) > 0 {
		return nil, nil, c.errs
	}
	return p, warns, nil
}

// jwtSet is every jwtRule that applies to a workload, with the union of
// their token locations in a fixed order.
type jwtSet struct {
	rules    []*jwtRule
	locs     []tokenLocation
	locRules [][]*jwtRule // the rules that read each location
	sanitize []string     // headers Rampart writes, removed from every request
}

func newJWTSet(policies []*requestAuthn) jwtSet {
	var js jwtSet
	for _, p := range policies {
		for _, r := range p.rules {
			js.rules = append(js.rules, r)
			for _, l := range r.locations {
				i := slices.Index(js.locs, l)
				if i < 0 {
					js.locs = append(js.locs, l)
					js.locRules = append(js.locRules, nil)
					i = len(js.locs) - 1
				}
				js.locRules[i] = append(js.locRules[i], r)
			}
			if r.payloadHeader != "" {
				js.sanitize = appendHeader(js.sanitize, r.payloadHeader)
			}
			for _, ch := range r.claimHeaders {
				js.sanitize = appendHeader(js.sanitize, ch.Header)
			}
		}
	}
	return js
}

func appendHeader(hs []string, h string) []string {
	h = textproto.CanonicalMIMEHeaderKey(h)
	if slices.Contains(hs, h) {
		return hs
	}
	return append(hs, h)
}

// authenticate validates every token the request carries at a location
// some rule reads. Any invalid token rejects the request (401); the first
// valid one, in rule order, sets the request principal. Istio leaves the
// principal "nondeterministic" when several tokens are presented; Rampart
// requires all of them to be valid and picks deterministically.
func (js *jwtSet) authenticate(r *http.Request, cache *JWKSCache, now time.Time) (AuthResult, int, error) {
	res := AuthResult{RemoveHeaders: js.sanitize}
	owned := false
	for li, loc := range js.locs {
		tok, ok := loc.extract(r)
		if !ok {
			continue
		}
		rule, claims, err := verifyToken(r.Context(), tok, js.locRules[li], cache, now)
		if err != nil {
			return AuthResult{RemoveHeaders: js.sanitize}, http.StatusUnauthorized, err
		}
		if !res.Authenticated {
			res.Authenticated = true
			res.Policy = rule.ref
			res.Claims = claims
			res.Issuer, _ = claims["iss"].(string)
			res.Subject, _ = claims["sub"].(string)
			res.Presenter, _ = claims["azp"].(string)
			res.Audiences = audiences(claims["aud"])
		}
		if !owned {
			res.RemoveHeaders = slices.Clone(res.RemoveHeaders)
			owned = true
		}
		if !rule.forward && loc.kind == locHeader && !slices.Contains(res.RemoveHeaders, loc.name) {
			res.RemoveHeaders = append(res.RemoveHeaders, loc.name)
		}
		if rule.payloadHeader != "" {
			// The token was verified: header.payload.signature.
			_, rest, _ := strings.Cut(tok, ".")
			payload, _, _ := strings.Cut(rest, ".")
			res.SetHeaders = append(res.SetHeaders, HeaderValue{Name: rule.payloadHeader, Value: payload})
		}
		for _, ch := range rule.claimHeaders {
			if v, ok := claimString(claims, ch.Claim); ok {
				res.SetHeaders = append(res.SetHeaders, HeaderValue{Name: ch.Header, Value: v})
			}
		}
	}
	return res, http.StatusOK, nil
}

// verifyToken checks a token against the rules that read its location, in
// the order Envoy's jwt_authn does: form, issuer, exp/nbf, audiences, then
// the signature. The token is accepted when one rule with its issuer
// accepts it.
func verifyToken(ctx context.Context, tok string, rules []*jwtRule, cache *JWKSCache, now time.Time) (*jwtRule, map[string]any, error) {
	if strings.Count(tok, ".") != 2 {
		return nil, nil, &JWTError{Reason: reasonMalformed}
	}
	sig, err := jose.ParseSignedCompact(tok, signatureAlgorithms)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, nil, &JWTError{Reason: reasonUnsupportedAlg, Err: err}
		}
		return nil, nil, &JWTError{Reason: reasonMalformed, Err: err}
	}
	var claims map[string]any
	if err := json.Unmarshal(sig.UnsafePayloadWithoutVerification(), &claims); err != nil || claims == nil {
		return nil, nil, &JWTError{Reason: reasonBadJSON, Err: err}
	}
	iss, _ := claims["iss"].(string)
	var lastErr error = &JWTError{Reason: reasonUnknownIssuer, Issuer: iss}
	for _, rule := range rules {
		if rule.issuer != iss {
			continue
		}
		if err := checkClaims(claims, rule, now); err != nil {
			lastErr = err
			continue
		}
		ks, err := rule.keySet(ctx, cache, sig.Signatures[0].Header.KeyID)
		if err != nil {
			lastErr = &JWTError{Reason: reasonJWKSFetch, Issuer: iss, Err: err}
			continue
		}
		if _, err := ks.verify(sig); err != nil {
			reason := reasonBadSignature
			if errors.Is(err, errNoKey) {
				reason = reasonNoKey
			}
			lastErr = &JWTError{Reason: reason, Issuer: iss, Err: err}
			continue
		}
		return rule, claims, nil
	}
	return nil, nil, lastErr
}

// checkClaims applies exp and nbf with ClockSkew and the rule's audiences
// (when it lists any, the token's aud must contain one of them).
func checkClaims(claims map[string]any, rule *jwtRule, now time.Time) error {
	iss := rule.issuer
	sec := func(name string) (float64, bool, error) {
		v, ok := claims[name]
		if !ok {
			return 0, false, nil
		}
		f, ok := v.(float64)
		if !ok {
			return 0, false, &JWTError{Reason: reasonBadJSON, Issuer: iss, Err: fmt.Errorf("claim %s is not a number", name)}
		}
		return f, true, nil
	}
	t := float64(now.Unix())
	skew := ClockSkew.Seconds()
	exp, ok, err := sec("exp")
	if err != nil {
		return err
	}
	if ok && t > exp+skew {
		return &JWTError{Reason: reasonExpired, Issuer: iss}
	}
	nbf, ok, err := sec("nbf")
	if err != nil {
		return err
	}
	if ok && t+skew < nbf {
		return &JWTError{Reason: reasonNotYetValid, Issuer: iss}
	}
	if len(rule.audiences) > 0 {
		for _, a := range audiences(claims["aud"]) {
			if slices.Contains(rule.audiences, a) {
				return nil
			}
		}
		return &JWTError{Reason: reasonAudience, Issuer: iss}
	}
	return nil
}

// keySet returns the keys a rule verifies with: inline jwks, the jwksUri
// document, or the one its issuer's OpenID configuration names.
func (r *jwtRule) keySet(ctx context.Context, cache *JWKSCache, kid string) (*keySet, error) {
	if r.inline != nil {
		return r.inline, nil
	}
	// A fetch serves every request waiting on it: one client giving up
	// must not fail it for the others. The rule's timeout bounds it.
	ctx = context.WithoutCancel(ctx)
	uri := r.uri
	if uri == "" {
		var err error
		if uri, err = cache.discover(ctx, r.issuer, r.timeout); err != nil {
			return nil, err
		}
	}
	return cache.keys(ctx, uri, kid, r.timeout)
}

// audiences reads the aud claim, a string or a list of strings.
func audiences(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// claimString reads a claim for outputClaimToHeaders: a string, number or
// boolean, nested claims named with ".", as Envoy's claim_to_headers does.
func claimString(claims map[string]any, name string) (string, bool) {
	v := lookupClaim(claims, strings.Split(name, "."))
	if v == nil {
		v = claims[name] // a claim whose own name contains "."
	}
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}
