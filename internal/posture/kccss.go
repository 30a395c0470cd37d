package posture

import (
	"fmt"
	"math"
)

// This file holds the KCCSS arithmetic: Octarine's Kubernetes Common
// Configuration Scoring System, which scores a configuration risk the way
// CVSS scores a vulnerability. docs/posture.md documents every constant.

// Impact is how much a risk harms confidentiality, integrity or
// availability.
type Impact int

// The impact levels, in increasing order so that a remediation can lower
// one by subtracting one.
const (
	NoImpact Impact = iota
	LowImpact
	HighImpact
)

// Value is the impact's weight in the formula.
func (i Impact) Value() float64 {
	switch i {
	case HighImpact:
		return 0.56
	case LowImpact:
		return 0.22
	}
	return 0
}

func (i Impact) String() string {
	switch i {
	case HighImpact:
		return "high"
	case LowImpact:
		return "low"
	}
	return "none"
}

// lower returns the impact n levels down, never below none.
func (i Impact) lower(n int) Impact { return max(NoImpact, i-Impact(n)) }

// Scope is how far a successful exploit reaches beyond the container.
type Scope string

// The scopes.
const (
	ScopeNone    Scope = "none"
	ScopeHost    Scope = "host"
	ScopeCluster Scope = "cluster"
)

// Value is the scope's weight in the formula.
func (s Scope) Value() float64 {
	switch s {
	case ScopeHost, ScopeCluster:
		return 1
	}
	return 0.25
}

// AttackVector is where an attacker must stand to exploit a risk.
type AttackVector string

// The attack vectors.
const (
	Remote AttackVector = "remote"
	Local  AttackVector = "local"
)

// Value is the attack vector's weight in the formula.
func (a AttackVector) Value() float64 {
	if a == Remote {
		return 0.85
	}
	return 0.55
}

// Exploitability is how easily the risk is exploited.
type Exploitability string

// The exploitability levels.
const (
	ExploitHigh     Exploitability = "high"
	ExploitModerate Exploitability = "moderate"
	ExploitLow      Exploitability = "low"
	ExploitVeryLow  Exploitability = "very-low"
)

// Value is the exploitability's weight in the formula.
func (e Exploitability) Value() float64 {
	switch e {
	case ExploitHigh:
		return 0.54
	case ExploitModerate:
		return 0.4
	case ExploitLow:
		return 0.1
	}
	return 0.05
}

// RuleScore is KCCSS's score of one risk:
//
//	scope × 4 × (1 − (1−C)(1−I)(1−A)) + 9 × AV × E
//
// clamped to 0..10.
func RuleScore(c, i, a Impact, s Scope, av AttackVector, e Exploitability) float64 {
	impact := 1 - (1-c.Value())*(1-i.Value())*(1-a.Value())
	return clamp(s.Value()*4*impact + 9*av.Value()*e.Value())
}

// CombineScores is KCCSS's workload score: the square root of the sum of
// the squares of the highest rule score in each (attack vector, scope)
// bucket, clamped to 0..10. Taking one score per bucket keeps ten variants
// of the same risk from adding up to more than the worst of them.
func CombineScores(bucketMax []float64) float64 {
	sum := 0.0
	for _, s := range bucketMax {
		sum += s * s
	}
	return clamp(math.Sqrt(sum))
}

func clamp(x float64) float64 { return min(10, max(0, x)) }

// Band names a score's range: Low up to 3, Medium up to 7, High above.
func Band(score float64) string {
	switch {
	case score > 7:
		return "High"
	case score > 3:
		return "Medium"
	}
	return "Low"
}

// round2 rounds to two decimals, the precision every output shows, so that
// golden files do not depend on floating-point noise.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

func bucketName(av AttackVector, s Scope) string { return fmt.Sprintf("%s/%s", av, s) }
