package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is a parsed JSON Web Key Set: the public signing keys only.
type keySet struct {
	keys []jose.JSONWebKey
}

// errNoKey means no key of the set fits the token's kid and algorithm.
var errNoKey = errors.New("no key matches the token's kid and algorithm")

// parseJWKS parses a JWKS document. Keys Rampart cannot use (symmetric
// keys, unknown types, keys for encryption) are skipped as Envoy skips
// them; a set with no usable key is an error.
func parseJWKS(data []byte) (*keySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	ks := &keySet{}
	for _, k := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(k); err != nil || !key.Valid() {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if _, symmetric := key.Key.([]byte); symmetric {
			continue
		}
		ks.keys = append(ks.keys, key.Public())
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("parse jwks: no usable public signing key")
	}
	return ks, nil
}

// hasKid reports whether a key with this kid is in the set; a token
// without kid can use any key.
func (ks *keySet) hasKid(kid string) bool {
	if kid == "" {
		return true
	}
	for i := range ks.keys {
		if ks.keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

// verify checks the token's signature against the keys whose kid (when the
// token names one) and algorithm (when the key names one) fit, and
// returns the verified payload.
func (ks *keySet) verify(sig *jose.JSONWebSignature) ([]byte, error) {
	h := sig.Signatures[0].Header
	var lastErr error
	tried := false
	for i := range ks.keys {
		k := &ks.keys[i]
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		tried = true
		payload, err := sig.Verify(k)
		if err == nil {
			return payload, nil
		}
		lastErr = err
	}
	if !tried {
		return nil, errNoKey
	}
	return nil, lastErr
}

// JWKSOptions tune a JWKSCache. Zero values take the defaults.
type JWKSOptions struct {
	// Client fetches the documents; default a client with no timeout of
	// its own (each fetch is bounded by the rule's timeout).
	Client *http.Client
	// Refresh is how long fetched keys are used before being fetched
	// again; default 20 minutes, istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL.
	Refresh time.Duration
	// Retry is how long a failed fetch is remembered before the next
	// attempt, so a down issuer is not hit on every request; default 30s.
	Retry time.Duration
	// MinRefetch bounds refetches triggered by a token whose kid is not in
	// the cached set (key rotation); default 1 minute.
	MinRefetch time.Duration
	// MaxBytes bounds a fetched document; default 1 MiB.
	MaxBytes int64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// JWKSCache fetches JSON Web Key Sets from jwksUri (and OpenID discovery
// documents for rules that name neither jwks nor jwksUri) and caches them.
// It is safe for concurrent use; concurrent requests for the same stale
// document wait for one fetch. Share one cache across Engine rebuilds so
// that a policy change does not refetch every issuer's keys.
type JWKSCache struct {
	opts    JWKSOptions
	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu      sync.Mutex
	keys    *keySet // last good keys (JWKS entries)
	doc     string  // last good jwks_uri (discovery entries)
	fetched time.Time
	err     error
	failed  time.Time
}

// NewJWKSCache returns an empty cache.
func NewJWKSCache(opts JWKSOptions) *JWKSCache {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 20 * time.Minute
	}
	if opts.Retry <= 0 {
		opts.Retry = 30 * time.Second
	}
	if opts.MinRefetch <= 0 {
		opts.MinRefetch = time.Minute
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &JWKSCache{opts: opts, entries: map[string]*jwksEntry{}}
}

func (c *JWKSCache) entry(key string) *jwksEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		e = &jwksEntry{}
		c.entries[key] = e
	}
	return e
}

// keys returns the key set at uri, fetching it when it is missing, stale,
// or lacks kid (at most once per MinRefetch). When a refresh fails, the
// last good keys stay in use, as in Istio, until a fetch succeeds.
func (c *JWKSCache) keys(ctx context.Context, uri, kid string, timeout time.Duration) (*keySet, error) {
	e := c.entry("jwks " + uri)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.opts.Now()
	fresh := e.keys != nil && now.Sub(e.fetched) < c.opts.Refresh
	if fresh && (e.keys.hasKid(kid) || now.Sub(e.fetched) < c.opts.MinRefetch) {
		return e.keys, nil
	}
	if e.err != nil && now.Sub(e.failed) < c.opts.Retry {
		if e.keys != nil {
			return e.keys, nil
		}
		return nil, e.err
	}
	data, err := c.fetch(ctx, uri, timeout)
	var ks *keySet
	if err == nil {
		ks, err = parseJWKS(data)
	}
	if err != nil {
		e.err, e.failed = err, now
		if e.keys != nil {
			return e.keys, nil
		}
		return nil, err
	}
	e.keys, e.fetched, e.err = ks, now, nil
	return ks, nil
}

// discover returns the jwks_uri of an issuer's OpenID configuration, the
// source Istio uses when a rule sets neither jwks nor jwksUri.
func (c *JWKSCache) discover(ctx context.Context, issuer string, timeout time.Duration) (string, error) {
	e := c.entry("openid " + issuer)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.opts.Now()
	if e.doc != "" && now.Sub(e.fetched) < c.opts.Refresh {
		return e.doc, nil
	}
	if e.err != nil && now.Sub(e.failed) < c.opts.Retry {
		if e.doc != "" {
			return e.doc, nil
		}
		return "", e.err
	}
	data, err := c.fetch(ctx, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", timeout)
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err == nil {
		if err = json.Unmarshal(data, &doc); err == nil && doc.JWKSURI == "" {
			err = errors.New("openid configuration has no jwks_uri")
		}
	}
	if err != nil {
		e.err, e.failed = fmt.Errorf("discover keys of %s: %w", issuer, err), now
		if e.doc != "" {
			return e.doc, nil
		}
		return "", e.err
	}
	e.doc, e.fetched, e.err = doc.JWKSURI, now, nil
	return e.doc, nil
}

func (c *JWKSCache) fetch(ctx context.Context, uri string, timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", uri, err)
	}
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: status %s", uri, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", uri, err)
	}
	if int64(len(data)) > c.opts.MaxBytes {
		return nil, fmt.Errorf("fetch %s: document larger than %d bytes", uri, c.opts.MaxBytes)
	}
	return data, nil
}
