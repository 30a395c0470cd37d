package cli_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/cli"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden runs each testdata/golden/*.txt case: a txtar-style file whose
// "args" section is the command line (one argument per line), optional
// "stdin" is its input, and "exit", "stdout" and "stderr" are what it must
// produce. Paths in args are relative to this package.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			secs := parseSections(string(data))
			args := strings.Fields(secs["args"])
			var out, errw bytes.Buffer
			code := cli.Main(args, strings.NewReader(secs["stdin"]), &out, &errw)
			got := map[string]string{"exit": fmt.Sprintf("%d\n", code), "stdout": out.String(), "stderr": errw.String()}
			if *update {
				var b strings.Builder
				for _, name := range []string{"args", "stdin"} {
					if v, ok := secs[name]; ok {
						fmt.Fprintf(&b, "-- %s --\n%s", name, v)
					}
				}
				for _, name := range []string{"exit", "stdout", "stderr"} {
					fmt.Fprintf(&b, "-- %s --\n%s", name, got[name])
				}
				if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, name := range []string{"exit", "stdout", "stderr"} {
				if got[name] != secs[name] {
					t.Errorf("%s differs\ngot:\n%s\nwant:\n%s", name, got[name], secs[name])
				}
			}
		})
	}
}

// parseSections splits a txtar-style file into its "-- name --" sections.
func parseSections(s string) map[string]string {
	out := map[string]string{}
	var name string
	var b strings.Builder
	flush := func() {
		if name != "" {
			out[name] = b.String()
		}
		b.Reset()
	}
	for _, line := range strings.SplitAfter(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") {
			flush()
			name = strings.TrimSuffix(strings.TrimPrefix(trimmed, "-- "), " --")
			continue
		}
		b.WriteString(line)
	}
	flush()
	return out
}
