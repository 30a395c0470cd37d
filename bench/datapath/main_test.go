package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the benchmark binary when the
// benchmark re-executes itself as a load generator.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == loadgenCmd {
		os.Exit(loadgenMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(options) string
		wantErr string
	}{
		{
			name: "defaults",
			check: func(o options) string {
				if o.duration != 3*time.Second || o.reps != 9 || len(o.ns) != 2 || len(o.configs) != 4 || len(o.measures) != 3 {
					return "unexpected defaults"
				}
				return ""
			},
		},
		{
			name: "quick keeps explicit duration",
			args: []string{"-quick", "-duration", "2s"},
			check: func(o options) string {
				if o.duration != 2*time.Second || o.reps != 1 {
					return "quick overrode -duration or kept -reps"
				}
				return ""
			},
		},
		{
			name: "sizes sorted and deduplicated",
			args: []string{"-n", "10000,10,10"},
			check: func(o options) string {
				if len(o.ns) != 2 || o.ns[0] != 10 || o.ns[1] != 10000 {
					return "ns not sorted and unique"
				}
				return ""
			},
		},
		{name: "policy too small", args: []string{"-n", "3"}, wantErr: "policy size"},
		{name: "policy too large", args: []string{"-n", "1000000"}, wantErr: "policy size"},
		{name: "unknown config", args: []string{"-configs", "a,d"}, wantErr: "unknown configuration"},
		{name: "no baseline", args: []string{"-configs", "b"}, wantErr: "must include a"},
		{name: "unknown measure", args: []string{"-measures", "latency"}, wantErr: "unknown measure"},
		{name: "unbounded duration", args: []string{"-duration", "1h"}, wantErr: "out of range"},
		{name: "zero reps", args: []string{"-reps", "0"}, wantErr: "out of range"},
		{name: "unknown event level", args: []string{"-events", "all"}, wantErr: "unknown level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, os.Stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Errorf("%s: %+v", msg, o)
			}
		})
	}
}

// TestRatiosPairRounds checks that ratios divide values of the same round,
// so that drift between rounds cancels.
func TestRatiosPairRounds(t *testing.T) {
	o := options{configs: []config{cfgPlain, cfgRampart}, ns: []int{10, 10000}, measures: []measure{measureRR}, flatTolerance: 0.03}
	r := newReport(o, variantsOf(o))
	r.values[variant{cfg: cfgPlain}][measureRR] = []float64{100, 50}
	r.values[variant{cfgRampart, 10}][measureRR] = []float64{95, 47.5}
	r.values[variant{cfgRampart, 10000}][measureRR] = []float64{90, 46}
	r.cost[variant{cfg: cfgPlain}][measureRR] = []float64{10e-6, 20e-6}
	r.cost[variant{cfgRampart, 10}][measureRR] = []float64{12.5e-6, 25e-6}
	if got := summarize(r.ratios(seriesRate, variant{cfgRampart, 10}, measureRR)); got.Lo != 0.95 || got.Hi != 0.95 {
		t.Errorf("rate b/a at N=10 = %+v, want 0.95 in both rounds", got)
	}
	if got := summarize(r.ratios(seriesCPU, variant{cfgRampart, 10}, measureRR)); got.Lo != 0.8 || got.Hi != 0.8 {
		t.Errorf("CPU b/a at N=10 = %+v, want 0.8 (a's cost over b's) in both rounds", got)
	}
	f, ok := r.flatness(seriesRate, measureRR)
	if !ok || f.flat || f.overlap {
		t.Errorf("flatness = %+v, %v; want a change of about -4%%, not flat, disjoint", f, ok)
	}
	var b strings.Builder
	r.print(&b)
	for _, want := range []string{"b/a", "NOT flat", "MISSED", "met"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
