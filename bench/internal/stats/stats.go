// Package stats summarises the repeated measurements of Rampart's
// benchmarks: each measure is taken in several rounds and reported as its
// median with the range, so that one noisy round neither hides nor fakes
// a difference.
package stats

import (
	"math"
	"slices"
)

// Summary is the median and range of a sample of N values.
type Summary struct {
	Med, Lo, Hi float64
	N           int
}

// Summarize returns the median (the mean of the middle two for an even
// count) and the range of xs; all NaN for an empty sample.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{Med: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{Med: m, Lo: s[0], Hi: s[len(s)-1], N: len(s)}
}
