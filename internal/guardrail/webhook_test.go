package guardrail_test

import (
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rampartsec/rampart/internal/guardrail"
)

func TestWebhookConfiguration(t *testing.T) {
	sel, _ := metav1.ParseToLabelSelector("env=prod")
	cfg, err := guardrail.WebhookConfiguration(guardrail.WebhookOptions{
		Service:           &types.NamespacedName{Namespace: "rampart-system", Name: "guardrail"},
		CABundle:          []byte("PEM"),
		NamespaceSelector: sel,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "guardrail.rampart.io" || len(cfg.Webhooks) != 1 {
		t.Fatalf("config %s with %d webhooks", cfg.Name, len(cfg.Webhooks))
	}
	w := cfg.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		!slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) || string(w.ClientConfig.CABundle) != "PEM" {
		t.Errorf("webhook settings: %+v", w)
	}
	if s := w.ClientConfig.Service; s == nil || s.Namespace != "rampart-system" || s.Name != "guardrail" || *s.Path != "/validate" || *s.Port != 443 {
		t.Errorf("service: %+v", w.ClientConfig.Service)
	}
	if w.NamespaceSelector.MatchLabels["env"] != "prod" || len(w.NamespaceSelector.MatchExpressions) != 1 ||
		w.NamespaceSelector.MatchExpressions[0].Key != "kubernetes.io/metadata.name" || w.NamespaceSelector.MatchExpressions[0].Values[0] != "kube-system" {
		t.Errorf("namespace selector: %+v", w.NamespaceSelector)
	}
	if len(sel.MatchExpressions) != 0 {
		t.Error("the caller's selector was modified")
	}
	var got []string
	for _, r := range w.Rules {
		if !slices.Equal(r.Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}) {
			t.Errorf("operations %v", r.Operations)
		}
		for _, res := range r.Resources {
			got = append(got, r.APIGroups[0]+"/"+res)
		}
	}
	want := []string{"/pods", "/pods/ephemeralcontainers", "apps/daemonsets", "apps/deployments", "apps/replicasets", "apps/statefulsets",
		"batch/cronjobs", "batch/jobs", "rbac.authorization.k8s.io/clusterrolebindings", "rbac.authorization.k8s.io/clusterroles",
		"rbac.authorization.k8s.io/rolebindings", "rbac.authorization.k8s.io/roles"}
	if !slices.Equal(got, want) {
		t.Errorf("rules cover %v, want %v", got, want)
	}
}

func TestWebhookConfigurationErrors(t *testing.T) {
	svc := &types.NamespacedName{Namespace: "a", Name: "b"}
	tests := []struct {
		name    string
		opts    guardrail.WebhookOptions
		wantErr string
	}{
		{"neither URL nor service", guardrail.WebhookOptions{CABundle: []byte("x")}, "exactly one"},
		{"both", guardrail.WebhookOptions{URL: "https://x", Service: svc, CABundle: []byte("x")}, "exactly one"},
		{"no CA", guardrail.WebhookOptions{Service: svc}, "no CA bundle"},
		{"short name", guardrail.WebhookOptions{Name: "guardrail", Service: svc, CABundle: []byte("x")}, "fully qualified"},
		{"http URL", guardrail.WebhookOptions{URL: "http://127.0.0.1:8443", CABundle: []byte("x")}, "want https"},
	}
	for _, tt := range tests {
		if _, err := guardrail.WebhookConfiguration(tt.opts); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestParseWebhookURL(t *testing.T) {
	tests := []struct {
		in, url, host, wantErr string
	}{
		{in: "https://127.0.0.1:8443", url: "https://127.0.0.1:8443/validate", host: "127.0.0.1"},
		{in: "https://127.0.0.1:8443/", url: "https://127.0.0.1:8443/validate", host: "127.0.0.1"},
		{in: "https://guard.example.com/admit", url: "https://guard.example.com/admit", host: "guard.example.com"},
		{in: "https://[::1]:8443", url: "https://[::1]:8443/validate", host: "::1"},
		{in: "http://127.0.0.1:8443", wantErr: "want https"},
		{in: "https://u:p@host", wantErr: "without user"},
		{in: "https://host/?q=1", wantErr: "query"},
		{in: "127.0.0.1:8443", wantErr: ""},
	}
	for _, tt := range tests {
		u, h, err := guardrail.ParseWebhookURL(tt.in)
		if tt.url == "" {
			if err == nil {
				t.Errorf("ParseWebhookURL(%q) = %s, want an error", tt.in, u)
			} else if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseWebhookURL(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || u != tt.url || h != tt.host {
			t.Errorf("ParseWebhookURL(%q) = %s, %s, %v; want %s, %s", tt.in, u, h, err, tt.url, tt.host)
		}
	}
}
