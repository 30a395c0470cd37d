package posture_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// FuzzParseImage feeds image references, which come from untrusted
// manifests, to ParseImage.
func FuzzParseImage(f *testing.F) {
	for _, seed := range []string{
		"nginx",                         // no registry, no tag
		"nginx:1.27",                    // tag
		"registry.example.com:5000/a/b", // a port is not a tag
		"registry.example.com:5000/a/b:v1@sha256:" + strings.Repeat("ab", 32), // everything
		"a@sha256:short", // malformed digest
		"::@@//",         // separators only
		"",               // empty
		"a/b:c/d",        // colon before the last slash
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref := posture.ParseImage(s)
		if strings.Contains(ref.Tag, ":") || strings.Contains(ref.Tag, "/") {
			t.Errorf("ParseImage(%q).Tag = %q holds a separator", s, ref.Tag)
		}
		if again := posture.ParseImage(ref.String()); again != ref {
			t.Errorf("ParseImage(%q) = %+v, but reparsing %q gives %+v", s, ref, ref.String(), again)
		}
		if ref.Pinned() && ref.Mutable() {
			t.Errorf("%q is both pinned and mutable", s)
		}
	})
}

// FuzzAudit decodes arbitrary bytes as manifests and audits whatever
// decodes. Invariants: no panic, every finding names a registered rule,
// a field and a line, the audit is deterministic, scores stay in 0..10
// and every machine-readable output is well formed. Run it with
// -fuzzminimizetime 1x: minimizing multi-kilobyte manifests takes the
// fuzzer longer than finding new inputs.
func FuzzAudit(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.yaml")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && filepath.Base(name) != "expect.yaml" {
			f.Add(data) // every corpus manifest: valid inputs with findings
		}
	}
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: ''}]}\n")) // empty image
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {}\n"))                                   // no containers
	f.Add([]byte(`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"verbs":["*"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := resource.DecodeBytes("fuzz.yaml", data)
		if err != nil {
			return
		}
		rep := posture.Audit(objs, posture.Options{})
		for _, fd := range rep.Findings {
			if _, ok := posture.LookupRule(fd.ID); !ok {
				t.Errorf("finding %s has no registered rule", fd.ID)
			}
			if fd.Field == "" || fd.Line < 1 || len(fd.References) == 0 {
				t.Errorf("finding %s on %s lacks a field, line or reference: %+v", fd.ID, fd.Object, fd)
			}
		}
		for _, w := range rep.Workloads {
			if w.Score < 0 || w.Score > 10 {
				t.Errorf("%s scored %v", w.Object, w.Score)
			}
		}
		again := posture.Audit(objs, posture.Options{})
		a, _ := json.Marshal(rep)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Error("two audits of the same objects differ")
		}
		for _, write := range []func(*bytes.Buffer) error{
			func(b *bytes.Buffer) error { return posture.WriteJSON(b, rep) },
			func(b *bytes.Buffer) error { return posture.WriteSARIF(b, rep) },
		} {
			var buf bytes.Buffer
			if err := write(&buf); err != nil || !json.Valid(buf.Bytes()) {
				t.Errorf("invalid JSON output (err %v)", err)
			}
		}
		var buf bytes.Buffer
		if err := posture.WriteJUnit(&buf, rep); err != nil || validXML(buf.Bytes()) != nil {
			t.Errorf("invalid JUnit output (err %v)", err)
		}
		if !slices.IsSortedFunc(rep.Workloads, func(x, y posture.WorkloadRisk) int { return x.Line - y.Line }) {
			t.Error("workloads are not in input order")
		}
	})
}
