package posture_test

import (
	"math"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
)

// The expected scores below are computed by hand from the KCCSS formula
// scope × 4 × (1 − (1−C)(1−I)(1−A)) + 9 × AV × E, with the constants of
// docs/posture.md, so that a change to any constant fails here.
func TestRuleScore(t *testing.T) {
	H, L, N := posture.HighImpact, posture.LowImpact, posture.NoImpact
	tests := []struct {
		name    string
		c, i, a posture.Impact
		scope   posture.Scope
		av      posture.AttackVector
		e       posture.Exploitability
		want    float64
	}{
		// 1 × 4 × (1 − 0.44³) + 9 × 0.55 × 0.54 = 3.659264 + 2.673
		{"privileged", H, H, H, posture.ScopeHost, posture.Local, posture.ExploitHigh, 6.332264},
		// 1 × 4 × (1 − 0.44 × 0.78²) + 9 × 0.85 × 0.4 = 2.929216 + 3.06
		{"host network", H, L, L, posture.ScopeHost, posture.Remote, posture.ExploitModerate, 5.989216},
		// 0.25 × 4 × (1 − 0.78) + 9 × 0.55 × 0.1 = 0.22 + 0.495
		{"writable root", N, L, N, posture.ScopeNone, posture.Local, posture.ExploitLow, 0.715},
		// 1 × 4 × 0.56 + 9 × 0.85 × 0.05 = 2.24 + 0.3825
		{"cluster very low", N, N, H, posture.ScopeCluster, posture.Remote, posture.ExploitVeryLow, 2.6225},
		// no impact at all still leaves the exploitability term: 9 × 0.85 × 0.54
		{"no impact", N, N, N, posture.ScopeHost, posture.Remote, posture.ExploitHigh, 4.131},
		// the highest possible: 4 × 0.914816 + 4.131 = 7.790264 (the formula never reaches the clamp alone)
		{"maximum", H, H, H, posture.ScopeCluster, posture.Remote, posture.ExploitHigh, 7.790264},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := posture.RuleScore(tt.c, tt.i, tt.a, tt.scope, tt.av, tt.e)
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("RuleScore = %.6f, want %.6f", got, tt.want)
			}
		})
	}
}

func TestCombineScores(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"nothing", nil, 0},
		{"one bucket", []float64{4.2}, 4.2},
		// sqrt(3² + 4²) = 5
		{"pythagoras", []float64{3, 4}, 5},
		// sqrt(6² + 6² + 6²) = 10.39, clamped
		{"clamped", []float64{6, 6, 6}, 10},
		// sqrt(6.33² + 5.99²) = sqrt(40.0689 + 35.8801) = sqrt(75.949)
		{"privileged on host network", []float64{6.33, 5.99}, 8.714872},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := posture.CombineScores(tt.in); math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("CombineScores(%v) = %.6f, want %.6f", tt.in, got, tt.want)
			}
		})
	}
}

func TestBand(t *testing.T) {
	for _, tt := range []struct {
		score float64
		want  string
	}{{0, "Low"}, {3, "Low"}, {3.01, "Medium"}, {7, "Medium"}, {7.01, "High"}, {10, "High"}} {
		if got := posture.Band(tt.score); got != tt.want {
			t.Errorf("Band(%v) = %s, want %s", tt.score, got, tt.want)
		}
	}
}
