package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the benchmark binary when the
// benchmark re-executes itself as the application or a proxy.
func TestMain(m *testing.M) {
	if code := childMain(os.Args[1:]); code >= 0 {
		os.Exit(code)
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
				if o.duration != 5*time.Second || o.reps != 5 || o.rate != 1000 || o.conns != 16 || o.proxyProcs != 0 ||
					!slices.Equal(o.configs, allConfigs) {
					return "unexpected defaults"
				}
				return ""
			},
		},
		{
			name: "quick keeps explicit duration",
			args: []string{"-quick", "-duration", "2s"},
			check: func(o options) string {
				if o.duration != 2*time.Second || o.reps != 1 || o.warmup != 300*time.Millisecond {
					return "quick overrode -duration or kept -reps, -warmup"
				}
				return ""
			},
		},
		{
			name: "configs sorted and deduplicated",
			args: []string{"-configs", "c,a,c,b"},
			check: func(o options) string {
				if strings.Join([]string{string(o.configs[0]), string(o.configs[1]), string(o.configs[2])}, "") != "abc" || len(o.configs) != 3 {
					return "configs not sorted and unique"
				}
				return ""
			},
		},
		{
			name: "nginx L4 configurations",
			args: []string{"-configs", "f,a,e"},
			check: func(o options) string {
				if !slices.Equal(o.configs, []config{cfgDirect, cfgNginxL4, cfgNginxTCP}) || !o.hasFunc(config.stream) || o.hasFunc(func(c config) bool { return c == cfgNginx }) {
					return "want a, e, f"
				}
				return ""
			},
		},
		{
			name: "proxy GOMAXPROCS",
			args: []string{"-proxy-gomaxprocs", "1"},
			check: func(o options) string {
				if o.proxyProcs != 1 {
					return "-proxy-gomaxprocs not kept"
				}
				return ""
			},
		},
		{name: "unknown config", args: []string{"-configs", "a,g"}, wantErr: "unknown configuration"},
		{name: "negative proxy GOMAXPROCS", args: []string{"-proxy-gomaxprocs", "-1"}, wantErr: "out of range"},
		{name: "unbounded proxy GOMAXPROCS", args: []string{"-proxy-gomaxprocs", "100000"}, wantErr: "out of range"},
		{name: "no baseline", args: []string{"-configs", "b,c"}, wantErr: "must include a"},
		{name: "unbounded duration", args: []string{"-duration", "1h"}, wantErr: "out of range"},
		{name: "zero reps", args: []string{"-reps", "0"}, wantErr: "out of range"},
		{name: "zero rate", args: []string{"-rate", "0"}, wantErr: "out of range"},
		{name: "NaN rate", args: []string{"-rate", "NaN"}, wantErr: "out of range"},
		{name: "too many requests", args: []string{"-rate", "100000", "-duration", "10m"}, wantErr: "requests"},
		{name: "no connections", args: []string{"-conns", "0"}, wantErr: "out of range"},
		{name: "stray argument", args: []string{"b"}, wantErr: "unexpected arguments"},
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

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{name: "empty", p: 0.5, want: 0},
		{name: "one", sorted: []time.Duration{7}, p: 0.99, want: 7},
		{name: "p50 of 100", sorted: hundred, p: 0.5, want: 50 * time.Millisecond},
		{name: "p90 of 100 is the 90th, not the 91st", sorted: hundred, p: 0.9, want: 90 * time.Millisecond},
		{name: "p99 of 100", sorted: hundred, p: 0.99, want: 99 * time.Millisecond},
		{name: "max", sorted: hundred, p: 1, want: 100 * time.Millisecond},
		{name: "p50 of 3 is the middle", sorted: []time.Duration{1, 2, 3}, p: 0.5, want: 2},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

// TestSummaryEmpty checks that a measure with no values prints as "-".
func TestSummaryEmpty(t *testing.T) {
	if s := summarize(nil); !math.IsNaN(s.Med) || s.format("%.1f", 1) != "-" {
		t.Errorf("summarize(nil) = %+v, formatted %q", s, s.format("%.1f", 1))
	}
}

func TestSampleArithmetic(t *testing.T) {
	// 2 s at 1,000 req/s; the client side used 0.1 s of CPU, the server
	// side 0.3 s: 0.05 and 0.15 cores, so per 1,000 req/s the same.
	s := sample{rate: 1000, wall: 2, cpu: [2]float64{0.1, 0.3}}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"client vCPU/1k", s.vcpuPer1k(sideClient), 0.05},
		{"server vCPU/1k", s.vcpuPer1k(sideServer), 0.15},
		{"pair vCPU/1k", s.vcpuPer1k(-1), 0.2},
		{"cores", s.util(), 0.2},
		{"req/s per core", s.perCore(), 5000},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if v := (sample{}).vcpuPer1k(sideClient); !math.IsNaN(v) {
		t.Errorf("vCPU/1k of an empty sample = %v, want NaN", v)
	}
}

// TestGoalsPairRounds checks that added latency and the ratio to nginx are
// taken within each round, so that drift between rounds cancels, and that
// the verdicts follow the medians.
func TestGoalsPairRounds(t *testing.T) {
	o := options{configs: allConfigs, rate: 1000, reps: 2, conns: 16, proxyProcs: 1}
	r := newReport(o)
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	fixed := func(p90 float64, cpuClient, cpuServer float64) sample {
		return sample{rate: 1000, wall: 1, p90: ms(p90), cpu: [2]float64{cpuClient, cpuServer}}
	}
	maxed := func(rate, cores float64) sample {
		return sample{rate: rate, wall: 1, cpu: [2]float64{cores / 2, cores / 2}}
	}
	// Round 2 runs on a machine twice as slow: absolute values drift,
	// per-round differences and ratios do not.
	r.samples[cfgDirect][loadFixed] = []sample{fixed(0.2, 0, 0), fixed(0.4, 0, 0)}
	r.samples[cfgL4][loadFixed] = []sample{fixed(0.3, 0.05, 0.05), fixed(0.5, 0.05, 0.05)}
	r.samples[cfgL7][loadFixed] = []sample{fixed(0.9, 0.05, 0.25), fixed(1.1, 0.05, 0.25)}
	r.samples[cfgNginx][loadFixed] = []sample{fixed(0.5, 0.1, 0.1), fixed(0.7, 0.1, 0.1)}
	r.samples[cfgNginxL4][loadFixed] = []sample{fixed(0.4, 0.08, 0.07), fixed(0.6, 0.08, 0.07)}
	r.samples[cfgNginxTCP][loadFixed] = []sample{fixed(0.3, 0.04, 0.03), fixed(0.5, 0.04, 0.03)}
	r.samples[cfgDirect][loadMax] = []sample{maxed(8000, 0), maxed(4000, 0)}
	r.samples[cfgL4][loadMax] = []sample{maxed(4000, 0.5), maxed(2000, 0.5)}
	r.samples[cfgL7][loadMax] = []sample{maxed(2000, 1), maxed(1000, 1)}
	r.samples[cfgNginx][loadMax] = []sample{maxed(3000, 1), maxed(1500, 1)}
	r.samples[cfgNginxL4][loadMax] = []sample{maxed(3200, 0.5), maxed(1600, 0.5)}
	r.samples[cfgNginxTCP][loadMax] = []sample{maxed(5000, 0.5), maxed(2500, 0.5)}

	if got := summarize(r.added(cfgL4, loadFixed, func(s sample) time.Duration { return s.p90 })); math.Abs(got.Lo-0.1e-3) > 1e-9 || math.Abs(got.Hi-0.1e-3) > 1e-9 {
		t.Errorf("added p90 of b = %+v, want 0.1 ms in both rounds", got)
	}
	if got := summarize(r.perCoreRatio(cfgL4, cfgNginx)); math.Abs(got.Lo-8.0/3) > 1e-9 || math.Abs(got.Hi-8.0/3) > 1e-9 {
		t.Errorf("b/d per core = %+v, want 8/3 in both rounds", got)
	}
	if got := summarize(r.perCoreRatio(cfgL4, cfgNginxL4)); math.Abs(got.Lo-1.25) > 1e-9 || math.Abs(got.Hi-1.25) > 1e-9 {
		t.Errorf("b/e per core = %+v, want 1.25 in both rounds", got)
	}
	want := map[string]bool{
		"b: vCPU":  true,  // 0.05 on each side
		"c: vCPU":  false, // the server side's 0.25 is over 0.20
		"c: added": false, // 0.7 ms
		"b: max":   true,  // 8000 vs 3000 per core
		"c: max":   false, // 2000 vs 3000 per core
	}
	for _, g := range r.goals() {
		f := strings.Fields(g.what)
		key := f[0] + " " + f[1]
		met, ok := want[key]
		if !ok {
			t.Errorf("unexpected goal %q", g.what)
			continue
		}
		if g.absent != "" || g.met != met {
			t.Errorf("goal %q = met %v (%s), want met %v", g.what, g.met, g.absent, met)
		}
	}
	var b strings.Builder
	r.print(&b)
	for _, s := range []string{"Istio ztunnel", "0.06", "MISSED", "met", "Added latency against a", "b/d = 2.67",
		"GOMAXPROCS=1", "e  nginx L4 mTLS pair", "f  nginx L4 plaintext pair",
		"client 0.050 vs 0.080, server 0.050 vs 0.070", "b/e = 1.25", "floor: plaintext L4 relay pair (f)", "client 0.040, server 0.030",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, b.String())
		}
	}
	// e and f appear in every table d does: latency, added latency, cost,
	// maximum rate and Istio's, with a row for each side.
	for _, c := range []string{"d", "e", "f"} {
		if n := countRows(b.String(), c+" "); n != 6 {
			t.Errorf("%s has %d table rows, want 6 (latency, added, cost, maximum rate, Istio's two sides):\n%s", c, n, b.String())
		}
		for _, side := range sideNames {
			if !strings.Contains(b.String(), fmt.Sprintf("%s %s, %s side", c, config(c).describe(), side)) {
				t.Errorf("Istio table lacks %s's %s side", c, side)
			}
		}
	}
}

// countRows counts the lines that start with prefix: a configuration's
// rows in the report's tables.
func countRows(report, prefix string) int {
	n := 0
	for _, l := range strings.Split(report, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func TestGoalsWithoutNginx(t *testing.T) {
	r := newReport(options{configs: []config{cfgDirect, cfgL4}, rate: 1000})
	for _, g := range r.goals() {
		if strings.Contains(g.what, "nginx") && g.absent == "" {
			t.Errorf("goal %q judged without d", g.what)
		}
	}
	var b strings.Builder
	r.print(&b)
	if strings.Contains(b.String(), "GOMAXPROCS") {
		t.Errorf("report mentions GOMAXPROCS without -proxy-gomaxprocs:\n%s", b.String())
	}
}

// TestL4Comparisons checks that the comparisons of b with nginx's L4
// pairs say which configuration is missing instead of printing values of
// nothing.
func TestL4Comparisons(t *testing.T) {
	tests := []struct {
		name    string
		configs []config
		absent  []string // per line: b vs e CPU, b vs e per core, f's floor
	}{
		{name: "all", configs: allConfigs, absent: []string{"", "", ""}},
		{name: "no e", configs: []config{cfgDirect, cfgL4, cfgNginxTCP}, absent: []string{"e not measured", "e not measured", ""}},
		{name: "no b", configs: []config{cfgDirect, cfgNginxL4}, absent: []string{"b not measured", "b not measured", "f not measured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newReport(options{configs: tt.configs, rate: 1000}).l4Comparisons()
			if len(cs) != len(tt.absent) {
				t.Fatalf("%d comparisons, want %d", len(cs), len(tt.absent))
			}
			for i, c := range cs {
				if c.absent != tt.absent[i] || (c.absent == "") == (c.value == "") {
					t.Errorf("%q: value %q, absent %q; want absent %q", c.what, c.value, c.absent, tt.absent[i])
				}
			}
		})
	}
}
