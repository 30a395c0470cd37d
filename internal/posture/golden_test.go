package posture_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden renders every testdata/golden/*.yaml input in each output
// format and compares with the .golden files beside it; go test -update
// rewrites them.
func TestGolden(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/golden/*.yaml")
	if len(inputs) == 0 {
		t.Fatal("no golden inputs")
	}
	formats := []struct {
		ext   string
		write func(*bytes.Buffer, posture.Report) error
		valid func([]byte) error
	}{
		{"table", func(b *bytes.Buffer, r posture.Report) error { return posture.WriteTable(b, r, false) }, nil},
		{"json", func(b *bytes.Buffer, r posture.Report) error { return posture.WriteJSON(b, r) }, validJSON},
		{"sarif", func(b *bytes.Buffer, r posture.Report) error { return posture.WriteSARIF(b, r) }, validJSON},
		{"junit", func(b *bytes.Buffer, r posture.Report) error { return posture.WriteJUnit(b, r) }, validXML},
	}
	for _, in := range inputs {
		base := strings.TrimSuffix(in, ".yaml")
		rep, _ := mustAudit(t, in, posture.Options{})
		for _, f := range formats {
			t.Run(filepath.Base(base)+"."+f.ext, func(t *testing.T) {
				var b bytes.Buffer
				if err := f.write(&b, rep); err != nil {
					t.Fatal(err)
				}
				if f.valid != nil {
					if err := f.valid(b.Bytes()); err != nil {
						t.Fatalf("output is not valid: %v", err)
					}
				}
				compareGolden(t, base+"."+f.ext+".golden", b.Bytes())
			})
		}
		for _, w := range rep.Workloads {
			t.Run(filepath.Base(base)+".explain."+w.Object.Name, func(t *testing.T) {
				var b bytes.Buffer
				if err := posture.WriteExplain(&b, w); err != nil {
					t.Fatal(err)
				}
				compareGolden(t, base+".explain-"+w.Object.Namespace+"-"+w.Object.Name+".golden", b.Bytes())
			})
		}
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run go test -update to accept):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first differing line, which is what one needs to
// judge a golden change.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return "(no line differs)"
}

func validJSON(b []byte) error {
	var v any
	return json.Unmarshal(b, &v)
}

func validXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		if _, err := d.Token(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
