package posture_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// TestRegistry checks that every built-in rule is complete, that every
// Kubernetes check and every implemented CIS section has a rule citing it,
// and that Register refuses bad or duplicate rules.
func TestRegistry(t *testing.T) {
	rules := posture.Rules()
	ids := map[string]bool{}
	cited := map[string]bool{}
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			t.Error(err)
		}
		ids[r.ID] = true
		for _, ref := range r.References {
			if ref.Standard == posture.CIS {
				cited[ref.Control] = true
			}
		}
	}
	for _, id := range posture.PSSCheckIDs() {
		if !ids[id] {
			t.Errorf("Kubernetes check %s has no rule", id)
		}
	}
	for _, s := range posture.CISSections() {
		if !cited[s] {
			t.Errorf("CIS %s is cited by no rule", s)
		}
	}
	if len(posture.CISSections()) < 32 {
		t.Errorf("only %d CIS sections", len(posture.CISSections()))
	}

	noop := func(*resource.Object, *posture.Inventory, *posture.Reporter) {}
	good := posture.Rule{ID: "rampart:test-only", Title: "t", Severity: posture.Low, Remediation: "r",
		References: []posture.Reference{{Standard: posture.Rampart, Control: "test-only"}}}
	for _, tt := range []struct {
		name    string
		check   posture.Check
		wantErr string
	}{
		{"bad id", posture.Check{Rule: func() posture.Rule { r := good; r.ID = "nope"; return r }(), Object: noop}, "is not pss:, cis: or rampart:"},
		{"no severity", posture.Check{Rule: func() posture.Rule { r := good; r.Severity = 0; return r }(), Object: noop}, "no severity"},
		{"no references", posture.Check{Rule: func() posture.Rule { r := good; r.References = nil; return r }(), Object: noop}, "no references"},
		{"no function", posture.Check{Rule: good}, "set Workload, Object or both"},
		{"duplicate", posture.Check{Rule: func() posture.Rule { r := good; r.ID = "pss:privileged"; return r }(), Object: noop}, "registered twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := posture.Register(tt.check)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Register error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestDocsListEveryRule keeps docs/posture.md in step with the registry
// and the risk rules.
func TestDocsListEveryRule(t *testing.T) {
	data, err := os.ReadFile("../../docs/posture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, r := range posture.Rules() {
		if !strings.Contains(doc, "`"+r.ID+"`") {
			t.Errorf("docs/posture.md does not list rule %s", r.ID)
		}
	}
	for _, r := range posture.RiskRules {
		if !strings.Contains(doc, "| `"+r.ID+"` |") {
			t.Errorf("docs/posture.md does not list risk rule %s", r.ID)
		}
	}
}

func TestParseStandards(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    []posture.Standard
		wantErr string
	}{
		{"", posture.AllStandards(), ""},
		{"rampart, CIS,cis", []posture.Standard{posture.CIS, posture.Rampart}, ""},
		{"pss-restricted", []posture.Standard{posture.PSSRestricted}, ""},
		{"cis,nsa", nil, `unknown standard "nsa"`},
	} {
		got, err := posture.ParseStandards(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStandards(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseStandards(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
