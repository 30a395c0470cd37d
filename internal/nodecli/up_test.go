package nodecli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpUsage checks that bad flags of "up" are usage errors (exit 2)
// naming the flag, found before anything starts, whoever runs it.
func TestUpUsage(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown path normalization", []string{"up", "--path-normalization", "STRICT"}, `--path-normalization: path normalization "STRICT": want one of BASE, NONE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES`},
		{"bad pod CIDR", []string{"up", "--pod-cidr", "10.0.0.0"}, "--pod-cidr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			code, _, stderr := runCLI(t, append(tt.args, "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock"))...)
			if code != 2 || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.wantErr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a usage error left files: %v", entries)
			}
		})
	}
}
