package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/cli"
)

// TestMain lets the test binary act as the rampart CLI, as the benchmark
// program does, so that TestRampartAlone measures Rampart as a process.
func TestMain(m *testing.M) {
	if os.Getenv(selfEnv) == "1" {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestMappingParses(t *testing.T) {
	m, err := parseMapping(mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"kube-score", "trivy"} {
		if len(m.Peers[tool]) < 10 {
			t.Errorf("%s: only %d rules", tool, len(m.Peers[tool]))
		}
	}
	if r := m.classify("kube-score", Finding{Check: "container-resources", Message: "CPU limit is not set"}); r == nil || r.Scope != Security {
		t.Errorf("container-resources limit: %+v", r)
	}
	if r := m.classify("kube-score", Finding{Check: "container-resources", Message: "CPU request is not set"}); r == nil || r.Scope != OutOfScope {
		t.Errorf("container-resources request: %+v", r)
	}
	if r := m.classify("trivy", Finding{Check: "KSV-9999"}); r != nil {
		t.Errorf("an unknown check is classified: %+v", r)
	}
}

func TestMappingRejects(t *testing.T) {
	tests := []struct{ name, yaml, wantErr string }{
		{"unknown Rampart rule", "peers: {trivy: [{check: KSV-0017, scope: security, rampart: [pss:nope]}]}", "no Rampart rule pss:nope"},
		{"out of scope without why", "peers: {trivy: [{check: KSV-0015, scope: out}]}", "needs a why"},
		{"security gap without why", "peers: {trivy: [{check: KSV-0021, scope: security}]}", "needs a why"},
		{"unknown scope", "peers: {trivy: [{check: KSV-0017, scope: maybe}]}", "want security or out"},
		{"unknown field", "peers: {trivy: [{check: KSV-0017, scope: security, rampart: [pss:privileged], severity: high}]}", "field severity not found"},
		{"dispute without why", "disputed: [{tool: trivy, check: KSV-0017, manifest: a.yaml}]", "why are all required"},
	}
	for _, tt := range tests {
		if _, err := parseMapping([]byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestRampartAlone runs the benchmark on the corpus with the peers absent
// (an empty PATH and GOPATH): it must report them missing with how to
// install them, and still compare Rampart with expect.yaml and time it.
func TestRampartAlone(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv("GOPATH", t.TempDir())
	t.Setenv("GOBIN", "")
	var out strings.Builder
	res, err := run(context.Background(), config{corpus: "../../internal/posture/testdata/corpus", reps: 2, peers: []string{"kube-score", "trivy"}}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.tools) != 1 || res.tools[0].tool.Name != "rampart" {
		t.Fatalf("tools: %d", len(res.tools))
	}
	if len(res.missing) != 2 || !strings.Contains(res.missing[0], "install-peers.sh") || !strings.Contains(res.missing[1], "trivy@v0.74.0") {
		t.Errorf("missing peers: %q", res.missing)
	}
	if res.expectOK != len(res.manifests) || len(res.manifests) < 70 {
		t.Errorf("Rampart matches expect.yaml on %d of %d manifests", res.expectOK, len(res.manifests))
	}
	if len(res.tools[0].whole) != 2 {
		t.Errorf("timed %d repetitions, want 2", len(res.tools[0].whole))
	}
	for _, want := range []string{"MISSING", "insecure-nginx", "manifests/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
