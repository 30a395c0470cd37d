package endpoint_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/endpoint"
)

func TestValidateInstance(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"a", false},
		{"rampart", false},
		{"node12345", false},
		{"node123456", true}, // 10 characters: interface names would pass 15 bytes
		{"", true},
		{"1node", true},
		{"a-b", true}, // '-' would make "<instance>-" ambiguous
		{"a.b", true},
		{"Upper", true},
	}
	for _, tt := range tests {
		err := endpoint.ValidateInstance(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ValidateInstance(%q) = %v, wantErr %v", tt.in, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, endpoint.ErrInvalid) {
			t.Errorf("ValidateInstance(%q): %v is not ErrInvalid", tt.in, err)
		}
	}
}

func TestHostIfName(t *testing.T) {
	if got := endpoint.HostIfName("node12345", 0xffff); len(got) > 15 || got != "rpnode12345ffff" {
		t.Errorf("longest name: %q (%d bytes)", got, len(got))
	}
	if got := endpoint.HostIfName("a", 1); got != "rpa0001" {
		t.Errorf("got %q, want rpa0001", got)
	}
	// Fixed-width ids keep instances apart: "a" with id 0xb123 and "ab"
	// with id 0x1234 differ in length.
	if len(endpoint.HostIfName("a", 0xb123)) == len(endpoint.HostIfName("ab", 0x1234)) {
		t.Error("names of instances a and ab have the same length")
	}
}

func TestNetNSName(t *testing.T) {
	long := strings.Repeat("x", 253)
	tests := []struct {
		name string
		key  endpoint.Key
		want string
	}{
		{"short", endpoint.Key{Namespace: "default", Name: "web"}, "rp1-web.default"},
		{"dotted name", endpoint.Key{Namespace: "shop", Name: "db.primary"}, "rp1-db.primary.shop"},
		{"long name is hashed", endpoint.Key{Namespace: "default", Name: long}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := endpoint.NetNSName("rp1", tt.key)
			if tt.want != "" && got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(got) > 64 || !strings.HasPrefix(got, "rp1-") || strings.Contains(got, "/") {
				t.Errorf("%q: longer than 64 bytes, wrong prefix or a slash", got)
			}
		})
	}
	// Distinct keys give distinct names, also where a '-' join would not.
	seen := map[string]endpoint.Key{}
	for _, k := range []endpoint.Key{
		{Namespace: "a-b", Name: "c"}, {Namespace: "a", Name: "b-c"}, {Namespace: "b", Name: "a"},
		{Namespace: "default", Name: long}, {Namespace: "default", Name: long[:252] + "y"},
		{Namespace: "other", Name: long},
	} {
		n := endpoint.NetNSName("i", k)
		if prev, dup := seen[n]; dup {
			t.Errorf("%v and %v both map to %q", prev, k, n)
		}
		seen[n] = k
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in      string
		want    endpoint.Key
		wantErr string
	}{
		{in: "web", want: endpoint.Key{Namespace: "default", Name: "web"}},
		{in: "shop/db.primary", want: endpoint.Key{Namespace: "shop", Name: "db.primary"}},
		{in: "shop.x/db", wantErr: "namespace"},
		{in: "shop/", wantErr: "name"},
		{in: "Shop/db", wantErr: "namespace"},
	}
	for _, tt := range tests {
		got, err := endpoint.ParseKey(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseKey(%q) = %v, want error with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.want.Namespace+"/"+tt.want.Name {
			t.Errorf("ParseKey(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestSpecNormalize(t *testing.T) {
	tests := []struct {
		name    string
		spec    endpoint.Spec
		wantErr string
	}{
		{name: "defaults", spec: endpoint.Spec{Name: "web"}},
		{name: "full", spec: endpoint.Spec{Name: "web", Namespace: "shop", ServiceAccount: "web",
			Labels: map[string]string{"app": "web", "rampart.io/tier": "front"},
			Ports:  []endpoint.Port{{Name: "http", Port: 80}, {Port: 53, Protocol: "UDP"}}}},
		{name: "no name", spec: endpoint.Spec{}, wantErr: "name"},
		{name: "bad namespace", spec: endpoint.Spec{Name: "web", Namespace: "a.b"}, wantErr: "namespace"},
		{name: "bad label key", spec: endpoint.Spec{Name: "web", Labels: map[string]string{"-x": "y"}}, wantErr: "label key"},
		{name: "bad label value", spec: endpoint.Spec{Name: "web", Labels: map[string]string{"x": "a b"}}, wantErr: "label x value"},
		{name: "port zero", spec: endpoint.Spec{Name: "web", Ports: []endpoint.Port{{}}}, wantErr: "ports[0].port"},
		{name: "bad protocol", spec: endpoint.Spec{Name: "web", Ports: []endpoint.Port{{Port: 1, Protocol: "ICMP"}}}, wantErr: "ports[0].protocol"},
		{name: "bad port name", spec: endpoint.Spec{Name: "web", Ports: []endpoint.Port{{Port: 1, Name: "HTTP_"}}}, wantErr: "ports[0].name"},
		{name: "bad service account", spec: endpoint.Spec{Name: "web", ServiceAccount: "A"}, wantErr: "serviceAccount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Normalize()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, endpoint.ErrInvalid) {
					t.Errorf("got %v, want ErrInvalid with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Namespace == "" || got.ServiceAccount == "" {
				t.Errorf("defaults not filled in: %+v", got)
			}
			for _, p := range got.Ports {
				if p.Protocol == "" {
					t.Errorf("port %d has no protocol", p.Port)
				}
			}
		})
	}
}

// FuzzKeyNames feeds arbitrary "namespace/name" strings (as typed on the
// command line) through ParseKey and checks the names derived from every
// accepted key: a round trip through String, and a namespace name that
// is a single safe path element of at most 64 bytes with the instance
// prefix.
func FuzzKeyNames(f *testing.F) {
	for _, seed := range []string{
		"web",                                   // default namespace
		"shop/db.primary",                       // dotted name
		"a-b/c",                                 // '-' in the namespace
		"x/" + strings.Repeat("a", 253),         // longest name: hashed netns name
		"ns/..",                                 // path trickery, must be rejected
		"ns/a/b",                                // extra slash
		"/web",                                  // empty namespace
		strings.Repeat("n", 64) + "/web",        // namespace one byte too long
		"ns/" + strings.Repeat("a.", 126) + "a", // many dots
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := endpoint.ParseKey(s)
		if err != nil {
			return
		}
		if k2, err := endpoint.ParseKey(k.String()); err != nil || k2 != k {
			t.Fatalf("round trip of %q: %v, %v", s, k2, err)
		}
		n := endpoint.NetNSName("node12345", k)
		if len(n) > 64 || !strings.HasPrefix(n, "node12345-") || strings.ContainsAny(n, "/\x00") || n == "." || n == ".." {
			t.Fatalf("netns name %q for %v", n, k)
		}
	})
}
