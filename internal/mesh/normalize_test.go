package mesh_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		name string
		in   string
		mode mesh.PathNormalization
		want string
		err  error
	}{
		// The examples of Istio's "Authorization Policy Normalization" page.
		{"unreserved decoded", "/some%2fdata/%61%62%63", mesh.NormalizeBase, "/some%2fdata/abc", nil},
		{"slash decoded", "/some%2fdata/%61%62%63", mesh.NormalizeDecodeAndMergeSlashes, "/some/data/abc", nil},
		{"backslash", "/some\\data", mesh.NormalizeBase, "/some/data", nil},
		{"merge slashes", "/some//data///abc", mesh.NormalizeMergeSlashes, "/some/data/abc", nil},
		{"base keeps double slashes", "/some//data", mesh.NormalizeBase, "/some//data", nil},
		{"dot segments", "/public/./data/abc/../xyz", mesh.NormalizeBase, "/public/data/xyz", nil},
		{"encoded dot segments", "/public/%2e%2E/admin", mesh.NormalizeBase, "/admin", nil},
		{"dots above root", "/../../etc", mesh.NormalizeBase, "/etc", nil},
		{"trailing dot", "/a/b/.", mesh.NormalizeBase, "/a/b/", nil},
		{"query kept", "/a/../b?x=/../y", mesh.NormalizeBase, "/b?x=/../y", nil},
		{"decoded once", "/%252e%252e/admin", mesh.NormalizeBase, "/%252e%252e/admin", nil},
		{"reserved stays encoded", "/a%3Fb%20c", mesh.NormalizeBase, "/a%3Fb%20c", nil},
		{"encoded backslash decoded", "/a%5c..%5cadmin", mesh.NormalizeDecodeAndMergeSlashes, "/admin", nil},
		{"merge after dot removal", "/a//../b", mesh.NormalizeMergeSlashes, "/a/b", nil},
		{"nul rejected", "/a%00b", mesh.NormalizeBase, "", mesh.ErrBadPath},
		{"nul rejected without normalization", "/a%00", mesh.NormalizeNone, "", mesh.ErrBadPath},
		{"none keeps everything", "/a/../b//c", mesh.NormalizeNone, "/a/../b//c", nil},
		{"asterisk form untouched", "*", mesh.NormalizeBase, "*", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mesh.NormalizePath(tc.in, tc.mode)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("NormalizePath(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParsePathNormalization(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mesh.PathNormalization
		ok   bool
	}{
		{"BASE", mesh.NormalizeBase, true},
		{"none", mesh.NormalizeNone, true},
		{"MERGE_SLASHES", mesh.NormalizeMergeSlashes, true},
		{"Decode_And_Merge_Slashes", mesh.NormalizeDecodeAndMergeSlashes, true},
		{"", 0, false},
		{"DEFAULT", 0, false},
		{"MERGE-SLASHES", 0, false},
	} {
		got, err := mesh.ParsePathNormalization(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParsePathNormalization(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && !strings.EqualFold(got.String(), tc.in) {
			t.Errorf("%v.String() = %q, want %q in any case", got, got.String(), tc.in)
		}
	}
}

func TestCheckMethod(t *testing.T) {
	for m, ok := range map[string]bool{"GET": true, "PROPFIND": true, "M-SEARCH": true, "get": false, "Post": false} {
		if err := mesh.CheckMethod(m); (err == nil) != ok || (err != nil && !errors.Is(err, mesh.ErrBadMethod)) {
			t.Errorf("CheckMethod(%q) = %v, want ok=%v", m, err, ok)
		}
	}
}

func TestStringMatch(t *testing.T) {
	tests := []struct {
		pattern string
		fold    bool
		value   string
		want    bool
	}{
		{"abc", false, "abc", true},
		{"abc", false, "abcd", false},
		{"abc", false, "ABC", false},
		{"abc", true, "ABC", true},
		{"abc*", false, "abc", true},
		{"abc*", false, "abcd", true},
		{"abc*", false, "xabc", false},
		{"*abc", false, "abc", true},
		{"*abc", false, "xabc", true},
		{"*abc", false, "abcx", false},
		{"*ABC", true, "x.abc", true},
		{"*", false, "x", true},
		{"*", false, "", false},
		{"a*c", false, "a*c", true}, // '*' inside is literal
		{"a*c", false, "abc", false},
		{"*", true, "", false},
		// ASCII-only folding: the Kelvin sign does not fold to 'k'.
		{"k", true, "\u212a", false},
	}
	for _, tc := range tests {
		if got := mesh.ParseStringMatch(tc.pattern, tc.fold).Match(tc.value); got != tc.want {
			t.Errorf("%q (fold %v) on %q = %v, want %v", tc.pattern, tc.fold, tc.value, got, tc.want)
		}
		if s := mesh.ParseStringMatch(tc.pattern, tc.fold).String(); s != tc.pattern {
			t.Errorf("String() = %q, want %q", s, tc.pattern)
		}
	}
}
