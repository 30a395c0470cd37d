package mesh_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/mesh"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t0.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// keyServer serves a JWKS (and an OpenID configuration) on loopback and
// counts fetches.
type keyServer struct {
	*httptest.Server
	mu        sync.Mutex
	jwks      string
	fail      bool
	fetches   atomic.Int64
	discovery atomic.Int64
	delay     time.Duration
}

func newKeyServer(t *testing.T, jwks string) *keyServer {
	t.Helper()
	ks := &keyServer{jwks: jwks}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			ks.discovery.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": ks.URL, "jwks_uri": ks.URL + "/keys"})
		case "/keys":
			ks.fetches.Add(1)
			time.Sleep(ks.delay)
			ks.mu.Lock()
			defer ks.mu.Unlock()
			if ks.fail {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte(ks.jwks))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(jwks string, fail bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.jwks, ks.fail = jwks, fail
}

// uriEngine builds an engine whose one rule fetches keys from the server.
func uriEngine(t *testing.T, ks *keyServer, clk *fakeClock, cache *mesh.JWKSCache, iss string) *mesh.Engine {
	t.Helper()
	return mustEngine(t, mesh.Options{Now: clk.Now, JWKS: cache},
		reqAuthn("foo", "jwt", `{jwtRules: [{issuer: "`+iss+`", jwksUri: "`+ks.URL+`/keys", timeout: 2s}]}`))
}

func TestJWKSURIFetchAndCache(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	ks := newKeyServer(t, iss.jwks(t))
	clk := newFakeClock()
	cache := mesh.NewJWKSCache(mesh.JWKSOptions{Now: clk.Now, Refresh: 10 * time.Minute, Retry: 30 * time.Second})
	e := uriEngine(t, ks, clk, cache, iss.iss)
	check := func(step string, wantStatus int, wantFetches int64) {
		t.Helper()
		_, status, err := e.Authenticate(server, bearer(iss.token(t, map[string]any{"exp": clk.Now().Add(time.Hour).Unix()})))
		if status != wantStatus {
			t.Fatalf("%s: status %d (%v), want %d", step, status, err, wantStatus)
		}
		if got := ks.fetches.Load(); got != wantFetches {
			t.Fatalf("%s: %d fetches, want %d", step, got, wantFetches)
		}
	}
	check("first request fetches", 200, 1)
	check("second request uses the cache", 200, 1)
	clk.Advance(9 * time.Minute)
	check("still fresh", 200, 1)
	clk.Advance(2 * time.Minute)
	check("stale keys are refetched", 200, 2)

	// A rebuilt engine sharing the cache does not refetch.
	e = uriEngine(t, ks, clk, cache, iss.iss)
	check("rebuilt engine shares the cache", 200, 2)

	// When the issuer goes down, the last good keys stay in use and the
	// failure is retried only after Retry.
	ks.set("", true)
	clk.Advance(11 * time.Minute)
	check("refresh fails, stale keys used", 200, 3)
	check("failure remembered", 200, 3)
	clk.Advance(31 * time.Second)
	check("failure retried", 200, 4)
}

func TestJWKSURIUnavailable(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	ks := newKeyServer(t, "")
	ks.set("", true)
	clk := newFakeClock()
	cache := mesh.NewJWKSCache(mesh.JWKSOptions{Now: clk.Now, Retry: 30 * time.Second})
	e := uriEngine(t, ks, clk, cache, iss.iss)
	for i := range 3 {
		_, status, err := e.Authenticate(server, bearer(iss.token(t, nil)))
		if status != 401 || err == nil || !strings.HasPrefix(err.Error(), "Jwks remote fetch is failed") {
			t.Fatalf("request %d: status %d err %v, want 401 Jwks remote fetch is failed", i, status, err)
		}
	}
	if got := ks.fetches.Load(); got != 1 {
		t.Fatalf("%d fetches, want 1 (failures are remembered for Retry)", got)
	}
	// Requests without a token still pass while the issuer is down.
	if _, status, err := e.Authenticate(server, httptest.NewRequest(http.MethodGet, "/", nil)); status != 200 || err != nil {
		t.Fatalf("no token: status %d err %v", status, err)
	}
	// Once the issuer is back and Retry has passed, tokens validate.
	ks.set(iss.jwks(t), false)
	clk.Advance(31 * time.Second)
	if _, status, err := e.Authenticate(server, bearer(iss.token(t, nil))); status != 200 {
		t.Fatalf("after recovery: status %d err %v", status, err)
	}
}

func TestJWKSBadDocument(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	ks := newKeyServer(t, `{"keys": "nope"}`)
	clk := newFakeClock()
	e := uriEngine(t, ks, clk, mesh.NewJWKSCache(mesh.JWKSOptions{Now: clk.Now}), iss.iss)
	if _, status, err := e.Authenticate(server, bearer(iss.token(t, nil))); status != 401 || !strings.Contains(err.Error(), "parse jwks") {
		t.Fatalf("status %d err %v, want 401 naming the parse error", status, err)
	}
}

func TestJWKSConcurrentFetchOnce(t *testing.T) {
	iss := newIssuer(t, "https://issuer.example", "k1")
	ks := newKeyServer(t, iss.jwks(t))
	ks.delay = 50 * time.Millisecond
	clk := newFakeClock()
	e := uriEngine(t, ks, clk, mesh.NewJWKSCache(mesh.JWKSOptions{Now: clk.Now}), iss.iss)
	v := e.Workload(server)
	tok := iss.token(t, nil)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			if _, status, _ := v.Authenticate(bearer(tok)); status != 200 {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	if got := ks.fetches.Load(); got != 1 {
		t.Fatalf("%d fetches for 32 concurrent requests, want 1", got)
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	old := newIssuer(t, "https://issuer.example", "old")
	rotated := newIssuer(t, "https://issuer.example", "new")
	ks := newKeyServer(t, old.jwks(t))
	clk := newFakeClock()
	cache := mesh.NewJWKSCache(mesh.JWKSOptions{Now: clk.Now, MinRefetch: time.Minute})
	e := uriEngine(t, ks, clk, cache, old.iss)
	if _, status, _ := e.Authenticate(server, bearer(old.token(t, nil))); status != 200 {
		t.Fatal("old key must validate")
	}
	ks.set(rotated.jwks(t), false)
	// Within MinRefetch an unknown kid does not trigger a fetch.
	if _, status, _ := e.Authenticate(server, bearer(rotated.token(t, nil))); status != 401 || ks.fetches.Load() != 1 {
		t.Fatalf("status %d fetches %d, want 401 and 1 fetch", status, ks.fetches.Load())
	}
	clk.Advance(2 * time.Minute)
	if _, status, err := e.Authenticate(server, bearer(rotated.token(t, map[string]any{"exp": clk.Now().Add(time.Hour).Unix()}))); status != 200 || ks.fetches.Load() != 2 {
		t.Fatalf("status %d (%v) fetches %d, want 200 after one refetch for the new kid", status, err, ks.fetches.Load())
	}
}

func TestOpenIDDiscovery(t *testing.T) {
	var iss *testIssuer
	ks := newKeyServer(t, "")
	iss = newIssuer(t, ks.URL, "k1")
	ks.set(iss.jwks(t), false)
	clk := newFakeClock()
	e := mustEngine(t, mesh.Options{Now: clk.Now, JWKS: mesh.NewJWKSCache(mesh.JWKSOptions{Now: clk.Now})},
		reqAuthn("foo", "jwt", `{jwtRules: [{issuer: "`+ks.URL+`"}]}`))
	for range 2 {
		if _, status, err := e.Authenticate(server, bearer(iss.token(t, nil))); status != 200 {
			t.Fatalf("status %d err %v", status, err)
		}
	}
	if ks.discovery.Load() != 1 || ks.fetches.Load() != 1 {
		t.Fatalf("discovery %d fetches %d, want 1 and 1", ks.discovery.Load(), ks.fetches.Load())
	}
}
