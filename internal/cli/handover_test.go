package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeHandoverFind checks where "rampart up" looks for the daemon: a
// rampart-node in PATH is found, and without one the error says how to
// build it instead of failing obscurely.
func TestNodeHandoverFind(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	var errb bytes.Buffer
	if code := Main([]string{"up"}, strings.NewReader(""), &bytes.Buffer{}, &errb); code != 1 {
		t.Fatalf("up without rampart-node: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "go build -o . ./cmd/...") {
		t.Errorf("error does not say how to build the daemon: %q", errb.String())
	}
	bin := filepath.Join(dir, NodeBinary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := findNodeBinary()
	if err != nil || got != bin {
		t.Fatalf("findNodeBinary() = %q, %v; want %q", got, err, bin)
	}
}
