package stats

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name        string
		xs          []float64
		med, lo, hi float64
	}{
		{"odd", []float64{3, 1, 2}, 2, 1, 3},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4},
		{"one", []float64{7}, 7, 7, 7},
	} {
		s := Summarize(tc.xs)
		if s.Med != tc.med || s.Lo != tc.lo || s.Hi != tc.hi || s.N != len(tc.xs) {
			t.Errorf("%s: Summarize(%v) = %+v, want med %v lo %v hi %v n %d", tc.name, tc.xs, s, tc.med, tc.lo, tc.hi, len(tc.xs))
		}
	}
	if s := Summarize(nil); !math.IsNaN(s.Med) || s.N != 0 {
		t.Errorf("Summarize(nil) = %+v, want NaN and 0", s)
	}
	xs := []float64{3, 1, 2}
	Summarize(xs)
	if xs[0] != 3 {
		t.Error("Summarize sorted its input in place")
	}
}
