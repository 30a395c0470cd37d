package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/cli"
	"github.com/rampartsec/rampart/internal/testenv"
)

const privilegedPod = `apiVersion: v1
kind: Pod
metadata:
  name: bad
  namespace: shop
spec:
  containers:
  - name: app
    image: nginx
    securityContext:
      privileged: true
`

const cleanRole = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
  namespace: shop
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
`

// mustWrite writes content to a file in a fresh temporary directory.
func mustWrite(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAudit(t *testing.T) {
	bad := mustWrite(t, "bad.yaml", privilegedPod)
	clean := mustWrite(t, "clean.yaml", cleanRole)
	broken := mustWrite(t, "broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: 7\n")
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  []string // substrings of stdout
		notOut   []string
		wantErr  string // substring of stderr
	}{
		{name: "table", args: []string{"-f", bad}, wantCode: 0,
			wantOut: []string{"Pod/shop/bad", "HIGH    pss:privileged  spec.containers[0].securityContext.privileged  line 11", "CIS 5.2.2, PSS baseline privileged"},
			notOut:  []string{"\x1b["}},
		{name: "fail on high", args: []string{"-f", bad, "--fail-on", "high"}, wantCode: 1, wantOut: []string{"pss:privileged"}},
		{name: "fail on medium not met", args: []string{"-f", clean, "--fail-on", "low"}, wantCode: 0, wantOut: []string{"0 findings"}},
		{name: "standard filter", args: []string{"-f", bad, "--standard", "rampart"}, wantCode: 0,
			wantOut: []string{"rampart:image-mutable-tag"}, notOut: []string{"pss:privileged", "cis:5.1.6"}},
		{name: "stdin json", args: []string{"-f", "-", "-o", "json"}, stdin: privilegedPod, wantCode: 0,
			wantOut: []string{`"schemaVersion": "rampart.io/audit/v1"`, `"id": "pss:privileged"`, `"file": "-"`}},
		{name: "sarif", args: []string{"-f", bad, "-o", "sarif"}, wantCode: 0,
			wantOut: []string{`"version": "2.1.0"`, `"ruleId": "pss:privileged"`, `"startLine": 11`, `"security-severity": "8.0"`}},
		{name: "sarif from stdin has no physical location", args: []string{"-f", "-", "-o", "sarif"}, stdin: privilegedPod, wantCode: 0,
			wantOut: []string{`"fullyQualifiedName": "Pod/shop/bad#spec.containers[0].securityContext.privileged"`}, notOut: []string{"physicalLocation"}},
		{name: "junit", args: []string{"-f", bad, "-o", "junit"}, wantCode: 0,
			wantOut: []string{`<testsuite name="Pod/shop/bad"`, `<testcase name="pss:privileged spec.containers[0].securityContext.privileged"`}},
		{name: "explain", args: []string{"-f", bad, "--explain", "pod/shop/bad"}, wantCode: 0,
			wantOut: []string{"Pod/shop/bad", "privileged", "1.00 x 4 x 0.9148 + 9 x 0.55 x 0.54 = 6.33", "band: High"}},
		{name: "explain unknown", args: []string{"-f", bad, "--explain", "Deployment/shop/none"}, wantCode: 2, wantErr: "no such workload"},
		{name: "bad format", args: []string{"-f", bad, "-o", "xml"}, wantCode: 2, wantErr: `unknown format "xml"`},
		{name: "bad standard", args: []string{"-f", bad, "--standard", "nist"}, wantCode: 2, wantErr: `unknown standard "nist"`},
		{name: "bad severity", args: []string{"-f", bad, "--fail-on", "critical"}, wantCode: 2, wantErr: `unknown severity "critical"`},
		{name: "no input", args: nil, wantCode: 2, wantErr: "no input"},
		{name: "live mode without kubeconfig file", args: []string{"--kubeconfig", filepath.Join(t.TempDir(), "nope")}, wantCode: 1, wantErr: "load kubeconfig"},
		{name: "live mode and files", args: []string{"--kubeconfig", "k", "-f", bad}, wantCode: 2, wantErr: "either -f or --kubeconfig"},
		{name: "live mode unreachable", args: []string{"--kubeconfig", mustWrite(t, "kubeconfig", testenv.UnreachableKubeconfig)}, wantCode: 1, wantErr: "read cluster: list Namespace"},
		{name: "context without kubeconfig", args: []string{"-f", bad, "--context", "prod"}, wantCode: 2, wantErr: "--context needs --kubeconfig"},
		{name: "decode error names file and line", args: []string{"-f", broken}, wantCode: 1, wantErr: "broken.yaml:6"},
		{name: "missing file", args: []string{"-f", filepath.Join(t.TempDir(), "nope.yaml")}, wantCode: 1, wantErr: "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cli.Main(append([]string{"audit"}, tt.args...), strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out.String(), errb.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notOut {
				if strings.Contains(out.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, out.String())
				}
			}
			if tt.wantErr != "" && !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errb.String())
			}
		})
	}
}

// TestAuditJSONIsStable checks that two runs print identical JSON, which
// CI diffs and caches depend on.
func TestAuditJSONIsStable(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"a.yaml": privilegedPod, "b.yaml": cleanRole} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var first []byte
	for i := range 3 {
		var out, errb bytes.Buffer
		if code := cli.Main([]string{"audit", "-f", dir, "-o", "json"}, nil, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var doc struct {
			Findings []struct{ ID string } `json:"findings"`
		}
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil || len(doc.Findings) == 0 {
			t.Fatalf("bad JSON (%v): %s", err, out.String())
		}
		if i == 0 {
			first = out.Bytes()
		} else if !bytes.Equal(first, out.Bytes()) {
			t.Fatal("JSON output differs between runs")
		}
	}
}
