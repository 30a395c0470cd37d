package posture_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
)

// TestOwnedReplicaSet checks that a ReplicaSet owned by a listed Deployment
// is audited through its owner while it holds the owner's template, and on
// its own once its template drifts from it.
func TestOwnedReplicaSet(t *testing.T) {
	tests := []struct {
		file string
		want []string // audited workloads
	}{
		{"owned-replicaset-same-template.yaml", []string{"Deployment/shop/api"}},
		{"owned-replicaset.yaml", []string{"Deployment/shop/api", "ReplicaSet/shop/api-5d8f7"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rep, _ := mustAudit(t, filepath.Join("testdata/corpus", tt.file), posture.Options{})
			var got []string
			for _, w := range rep.Workloads {
				got = append(got, w.Object.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("workloads = %v, want %v", got, tt.want)
			}
		})
	}
}
