package resource_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/resource"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDecodeGolden decodes each testdata/decode/*.yaml and compares the
// objects it yields, or every error it reports, with the .golden file
// beside it.
func TestDecodeGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/decode/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			objs, err := resource.LoadAndDecode([]string{f}, nil)
			var got strings.Builder
			var list resource.ErrorList
			switch {
			case errors.As(err, &list):
				if objs != nil {
					t.Errorf("decode returned %d objects with errors; want none", len(objs))
				}
				for _, e := range list {
					fmt.Fprintln(&got, e)
				}
			case err != nil:
				t.Fatalf("unexpected error type %T: %v", err, err)
			default:
				for _, o := range objs {
					fmt.Fprintf(&got, "%s %s %s\n", o.Source, o.APIVersion, o.Ref())
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got.String() != string(want) {
				t.Errorf("decode %s:\ngot:\n%s\nwant:\n%s", f, got.String(), want)
			}
		})
	}
}

func TestLoadDirectoryAndStdin(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n"
	for name, body := range map[string]string{
		"a.yaml":     fmt.Sprintf(ns, "a"),
		"sub/b.yml":  fmt.Sprintf(ns, "b"),
		"sub/c.json": `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}`,
		"notes.txt":  "not a manifest",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := resource.LoadAndDecode([]string{dir, "-"}, strings.NewReader(fmt.Sprintf(ns, "d")))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c,d" {
		t.Fatalf("objects = %s, want a,b,c,d (directory walked in order, .txt skipped, stdin last)", got)
	}
	if objs[3].Source.File != "-" {
		t.Errorf("stdin object source = %q, want -", objs[3].Source.File)
	}
}

func TestDecodeIsAllOrNothing(t *testing.T) {
	good := "apiVersion: v1\nkind: Namespace\nmetadata: {name: good}\n"
	bad := "apiVersion: v1\nkind: Namespace\nmetadata: {name: bad, color: red}\n"
	objs, err := resource.Decode([]resource.Input{{Name: "good.yaml", Data: []byte(good)}, {Name: "bad.yaml", Data: []byte(bad)}})
	if err == nil || objs != nil {
		t.Fatalf("Decode = %d objects, %v; want no objects and an error", len(objs), err)
	}
	if !strings.Contains(err.Error(), "bad.yaml:3: metadata.color: unknown field") {
		t.Errorf("error %q does not locate the unknown field", err)
	}
}

func TestObjectLine(t *testing.T) {
	objs, err := resource.DecodeBytes("p.yaml", []byte(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: a
    image: x
    securityContext:
      privileged: true
`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"spec.containers[0].securityContext.privileged": 9,
		"spec.containers[0].securityContext.runAsUser":  8, // absent: nearest ancestor
		"spec.containers[0]":                            6,
		"metadata.name":                                 3,
	} {
		if got := objs[0].Line(path); got != want {
			t.Errorf("Line(%s) = %d, want %d", path, got, want)
		}
	}
}
