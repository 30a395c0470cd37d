package resource

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// TestAppendJSON checks that the decoder's encoder writes what
// encoding/json writes, for every kind of value the converter produces.
func TestAppendJSON(t *testing.T) {
	v := map[string]any{
		"s":     "quote \" backslash \\ newline \n tab \t nul \x00 bell \a del \x7f é ✓ \u2028 bad \xff end",
		"empty": "",
		"i":     int64(-42),
		"u":     uint64(math.MaxUint64),
		"f":     1.5e300,
		"small": 1e-7,
		"b":     true,
		"n":     nil,
		"list":  []any{int64(1), "two", []any{}, map[string]any{}},
		"map":   map[string]any{"z": false, "a": []any{nil}},
	}
	got, err := appendJSON(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("appendJSON wrote invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("appendJSON = %s\nencoding/json = %s", got, want)
	}
	if _, err := appendJSON(nil, math.Inf(1)); err == nil {
		t.Error("appendJSON(+Inf): no error")
	}
}

// FuzzAppendJSONString checks any string against encoding/json: the same
// text comes back, invalid UTF-8 replaced the same way.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\", "\x00\x1f\x7f", "\xff\xfe", "é\xc3", "\u2028\u2029", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("invalid JSON for %q: %v", s, err)
		}
		b, _ := json.Marshal(s)
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("appendJSONString(%q) decodes to %q, encoding/json's to %q", s, got, want)
		}
	})
}
