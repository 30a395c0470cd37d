package nodecli_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/rampartsec/rampart/internal/nodecli"
	"github.com/rampartsec/rampart/internal/testenv"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = nodecli.Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestGuardrailUsage checks that every misuse of the guardrail commands is
// a usage error (exit 2) with a message naming the flag.
func TestGuardrailUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown subcommand", []string{"guardrail", "deploy"}, `unknown command "deploy"`},
		{"serve without certificate", []string{"guardrail", "serve", "--key", "k"}, "--cert and --key are required"},
		{"serve with a bad cluster-scoped mode", []string{"guardrail", "serve", "--cert", "c", "--key", "k", "--cluster-scoped-mode", "deny=all"}, "--cluster-scoped-mode"},
		{"serve with a bad address", []string{"guardrail", "serve", "--cert", "c", "--key", "k", "--listen", "8443"}, "--listen"},
		{"serve with a context but no kubeconfig", []string{"guardrail", "serve", "--cert", "c", "--key", "k", "--context", "x"}, "--context needs --kubeconfig"},
		{"install without a destination", []string{"guardrail", "install", "--cert-dir", dir}, "exactly one of --service-url and --service"},
		{"install with two destinations", []string{"guardrail", "install", "--cert-dir", dir, "--service", "a/b", "--service-url", "https://x"}, "exactly one"},
		{"install with a bad service", []string{"guardrail", "install", "--cert-dir", dir, "--service", "guardrail"}, "want NAMESPACE/NAME"},
		{"install with an http URL", []string{"guardrail", "install", "--cert-dir", dir, "--service-url", "http://127.0.0.1:8443"}, "want https"},
		{"install with a bad selector", []string{"guardrail", "install", "--cert-dir", dir, "--service", "a/b", "--namespace-selector", "env in"}, "--namespace-selector"},
		{"apply without kubeconfig", []string{"guardrail", "install", "--cert-dir", dir, "--service", "a/b", "--apply"}, "--apply needs --kubeconfig"},
		{"kubeconfig without apply", []string{"guardrail", "install", "--cert-dir", dir, "--service", "a/b", "--kubeconfig", "k"}, "only go with --apply"},
		{"unknown flag", []string{"guardrail", "install", "--service", "a/b", "--ca", "x"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.wantErr)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a usage error wrote certificates: %v", entries)
	}
}

// TestGuardrailInstallPrints checks the printed configuration: the CA of
// --cert-dir as caBundle, the selector with kube-system excluded, private
// keys, and certificates reused on a second run.
func TestGuardrailInstallPrints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	args := []string{"guardrail", "install", "--service-url", "https://127.0.0.1:8443", "--cert-dir", dir, "--namespace-selector", "team=shop"}
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "wrote ") {
		t.Errorf("stderr %q does not say what was written", stderr)
	}
	var cfg admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict([]byte(stdout), &cfg); err != nil {
		t.Fatalf("output is not a ValidatingWebhookConfiguration: %v\n%s", err, stdout)
	}
	if cfg.APIVersion != "admissionregistration.k8s.io/v1" || cfg.Kind != "ValidatingWebhookConfiguration" || len(cfg.Webhooks) != 1 {
		t.Fatalf("output:\n%s", stdout)
	}
	w := cfg.Webhooks[0]
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.ClientConfig.CABundle, ca) {
		t.Error("caBundle is not the CA in --cert-dir")
	}
	if !strings.Contains(stdout, "caBundle: "+base64.StdEncoding.EncodeToString(ca)) {
		t.Error("caBundle is not printed base64-encoded")
	}
	if w.ClientConfig.URL == nil || *w.ClientConfig.URL != "https://127.0.0.1:8443/validate" {
		t.Errorf("url = %v", w.ClientConfig.URL)
	}
	if w.NamespaceSelector.MatchLabels["team"] != "shop" || !strings.Contains(stdout, "- kube-system") {
		t.Errorf("namespace selector: %+v", w.NamespaceSelector)
	}
	if *w.FailurePolicy != "Fail" || *w.SideEffects != "None" {
		t.Errorf("failurePolicy %s, sideEffects %s", *w.FailurePolicy, *w.SideEffects)
	}
	for _, f := range []string{"ca.key", "tls.key"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v (%v), want 0600", f, st.Mode().Perm(), err)
		}
	}
	code, again, stderr := runCLI(t, args...)
	if code != 0 || again != stdout || !strings.Contains(stderr, "reusing the certificates") {
		t.Errorf("second run: exit %d, same output %v, stderr %q", code, again == stdout, stderr)
	}
}

// TestGuardrailInstallApplyUnreachable checks that --apply reports a
// cluster it cannot reach as a failure (exit 1), not a usage error.
func TestGuardrailInstallApplyUnreachable(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(testenv.UnreachableKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "guardrail", "install", "--service", "rampart-system/guardrail", "--cert-dir", filepath.Join(dir, "certs"), "--apply", "--kubeconfig", kc)
	if code != 1 || !strings.Contains(stderr, "ValidatingWebhookConfiguration guardrail.rampart.io") {
		t.Errorf("exit %d, stderr %q; want 1 naming the configuration", code, stderr)
	}
}
