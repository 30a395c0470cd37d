package guardrail_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/guardrail"
	"github.com/rampartsec/rampart/internal/posture"
)

func mustLevel(t testing.TB, s string) guardrail.Level {
	t.Helper()
	l, err := guardrail.ParseLevel(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "baseline", want: "baseline"},
		{in: "restricted", want: "restricted"},
		{in: "rampart", want: "rampart"},
		{in: " restricted ", want: "restricted"},
		{in: "score:7", want: "score:7"},
		{in: "score:6.5", want: "score:6.5"},
		{in: "score:10", want: "score:10"},
		{in: "Restricted", wantErr: "want baseline, restricted, rampart or score:N"},
		{in: "privileged", wantErr: "want baseline"},
		{in: "", wantErr: "want baseline"},
		{in: "score:", wantErr: "above 0 and at most 10"},
		{in: "score:0", wantErr: "above 0 and at most 10"},
		{in: "score:11", wantErr: "above 0 and at most 10"},
		{in: "score:NaN", wantErr: "above 0 and at most 10"},
		{in: "score:-1", wantErr: "above 0 and at most 10"},
		{in: "score:seven", wantErr: "above 0 and at most 10"},
	}
	for _, tt := range tests {
		l, err := guardrail.ParseLevel(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseLevel(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || l.String() != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %s", tt.in, l, err, tt.want)
		}
	}
}

func TestParseModes(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "", want: "none"},
		{in: "none", want: "none"},
		{in: "warn=rampart,audit=rampart", want: "warn=rampart,audit=rampart"},
		{in: "audit=score:5, enforce=baseline", want: "enforce=baseline,audit=score:5"},
		{in: "enforce", wantErr: "want MODE=LEVEL"},
		{in: "deny=restricted", wantErr: "want MODE=LEVEL"},
		{in: "warn=strict", wantErr: `level "strict"`},
		{in: "warn=baseline,warn=restricted", wantErr: "warn given twice"},
	}
	for _, tt := range tests {
		p, err := guardrail.ParseModes(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseModes(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParseModes(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
}

func TestPolicyFromLabels(t *testing.T) {
	p := guardrail.PolicyFromLabels("shop", map[string]string{
		"guardrail.rampart.io/enforce":       "baseline",
		"guardrail.rampart.io/warn":          "oops",
		"guardrail.rampart.io/other":         "restricted",
		"pod-security.kubernetes.io/enforce": "privileged",
	})
	if got := p.String(); got != "enforce=baseline,warn=rampart" {
		t.Errorf("policy = %s, want enforce=baseline,warn=rampart (an invalid value reads as rampart)", got)
	}
	if len(p.Invalid) != 1 || !strings.Contains(p.Invalid[0], "guardrail.rampart.io/warn=oops") {
		t.Errorf("invalid = %q", p.Invalid)
	}
	if !guardrail.PolicyFromLabels("plain", nil).Empty() {
		t.Error("a namespace without labels has a policy")
	}
}

// TestLevelsAreNested checks, over every rule Rampart has, that a level
// includes everything the levels below it include, and which rules each
// level adds: the documented definitions.
func TestLevelsAreNested(t *testing.T) {
	levels := []string{"baseline", "restricted", "rampart"}
	in := map[string][]string{}
	for _, r := range posture.Rules() {
		f := posture.Finding{ID: r.ID, Severity: r.Severity, Standards: r.Standards()}
		for _, name := range levels {
			if mustLevel(t, name).Check([]posture.Finding{f}, nil) != nil {
				in[name] = append(in[name], r.ID)
			}
		}
	}
	for i := 1; i < len(levels); i++ {
		for _, id := range in[levels[i-1]] {
			if !slices.Contains(in[levels[i]], id) {
				t.Errorf("%s includes %s but %s does not", levels[i-1], id, levels[i])
			}
		}
	}
	for _, id := range in["restricted"] {
		if !strings.HasPrefix(id, "pss:") {
			t.Errorf("restricted includes %s, not a PSS check", id)
		}
	}
	for _, id := range []string{"pss:privileged", "pss:hostNamespaces", "pss:capabilities_baseline"} {
		if !slices.Contains(in["baseline"], id) {
			t.Errorf("baseline lacks %s", id)
		}
	}
	for _, id := range []string{"pss:runAsNonRoot", "pss:seccompProfile_restricted", "pss:allowPrivilegeEscalation"} {
		if slices.Contains(in["baseline"], id) || !slices.Contains(in["restricted"], id) {
			t.Errorf("%s should be in restricted only", id)
		}
	}
	for _, id := range []string{"cis:5.1.1", "cis:5.1.3", "cis:5.4.1", "rampart:image-mutable-tag", "rampart:sensitive-host-mount", "rampart:resource-limits", "rampart:ephemeral-storage-limit"} {
		if !slices.Contains(in["rampart"], id) {
			t.Errorf("rampart lacks %s", id)
		}
	}
	// Low findings and those that depend on other objects stay out.
	for _, id := range []string{"cis:5.1.6", "cis:5.7.3", "cis:5.3.2", "rampart:mesh-disabled", "rampart:image-no-digest", "rampart:low-uid", "rampart:low-gid"} {
		if slices.Contains(in["rampart"], id) {
			t.Errorf("rampart includes %s", id)
		}
	}
	t.Logf("baseline: %v\nrestricted adds: %d more\nrampart: %v", in["baseline"], len(in["restricted"])-len(in["baseline"]), in["rampart"])
}
