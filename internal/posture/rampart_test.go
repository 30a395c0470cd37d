package posture_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
)

// TestLowUID checks that rampart:low-uid reads the effective runAsUser (the
// container's, else the pod's) and points at the field that sets it.
func TestLowUID(t *testing.T) {
	tests := []struct {
		name      string
		pod       string // pod securityContext, or ""
		c0, c1    string // containers' securityContext, or ""
		wantField []string
	}{
		{"unset", "", "", "", []string{"spec.containers[0].securityContext.runAsUser", "spec.containers[1].securityContext.runAsUser"}},
		{"pod high", "runAsUser: 10001", "", "", nil},
		{"pod low inherited once", "runAsUser: 1000", "", "", []string{"spec.securityContext.runAsUser"}},
		{"container overrides low pod", "runAsUser: 1000", "runAsUser: 20000", "runAsUser: 20000", nil},
		{"container low over high pod", "runAsUser: 20000", "runAsUser: 10000", "", []string{"spec.containers[0].securityContext.runAsUser"}},
		{"windows skipped", "", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := func(s string) string {
				if s == "" {
					return "{}"
				}
				return "{" + s + "}"
			}
			os := ""
			if tt.name == "windows skipped" {
				os = "  os: {name: windows}\n"
			}
			pod := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n%s  securityContext: %s\n  containers:\n  - {name: a, image: app:1, securityContext: %s}\n  - {name: b, image: app:1, securityContext: %s}\n",
				os, sc(tt.pod), sc(tt.c0), sc(tt.c1))
			rep := posture.Audit(mustDecode(t, pod), posture.Options{})
			var got []string
			for _, f := range rep.Findings {
				if f.ID == "rampart:low-uid" {
					got = append(got, f.Field)
				}
			}
			if !slices.Equal(got, tt.wantField) {
				t.Errorf("rampart:low-uid at %v, want %v", got, tt.wantField)
			}
		})
	}
}
