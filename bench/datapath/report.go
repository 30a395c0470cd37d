package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampartsec/rampart/bench/internal/stats"
)

// goalRatio is the target for b/a on every measure.
const goalRatio = 0.95

// variant is a configuration with a policy size; n is 0 for (a).
type variant struct {
	cfg config
	n   int
}

func (v variant) String() string {
	if v.n == 0 {
		return string(v.cfg)
	}
	return fmt.Sprintf("%s N=%d", v.cfg, v.n)
}

// environment describes the machine and tools of a run.
type environment struct {
	kernel, goVersion     string
	iperf, iptables       string
	cpus                  int
	loadBefore, loadAfter string
}

// report holds every value of a run.
type report struct {
	opts     options
	env      environment
	variants []variant
	// values[v][m] holds one value per round, in round order; throughput
	// is in bit/s, the others per second.
	values map[variant]map[measure][]float64
	// cost[v][m] holds, per round, the CPU seconds per operation (per
	// transaction, per connection, per GB) of the client, the server and
	// this process (which drains flow events in b).
	cost map[variant]map[measure][]float64
	// selfCost[v][m] is the part of cost[v][m] used by this process,
	// which in b is mostly the flow event reader.
	selfCost map[variant]map[measure][]float64
	// bpf[v][m] holds, per round, what the attached programs cost during
	// a measure (-bpf-stats only).
	bpf map[variant]map[measure][]bpfSample
	// progCost[path][n] holds, per repetition, the programs' time per
	// packet on each path of progCaseNames, measured with
	// BPF_PROG_TEST_RUN.
	progCost map[string]map[int][]float64
	// progCaseNames lists the paths in the order measured.
	progCaseNames []string
	// forwarded is how many packets the datapath forwarded over the run.
	forwarded uint64
	// notes are printed after the tables.
	notes []string
}

func newReport(o options, variants []variant) *report {
	r := &report{
		opts:     o,
		variants: variants,
		values:   make(map[variant]map[measure][]float64),
		cost:     make(map[variant]map[measure][]float64),
		selfCost: make(map[variant]map[measure][]float64),
		bpf:      make(map[variant]map[measure][]bpfSample),
		progCost: make(map[string]map[int][]float64),
	}
	for _, v := range variants {
		r.values[v] = make(map[measure][]float64)
		r.cost[v] = make(map[measure][]float64)
		r.selfCost[v] = make(map[measure][]float64)
		r.bpf[v] = make(map[measure][]bpfSample)
	}
	return r
}

// variantsOf lists what a run measures: (a) once, then each other
// configuration at each N.
func variantsOf(o options) []variant {
	vs := []variant{{cfg: cfgPlain}}
	for _, c := range o.configs {
		if c == cfgPlain {
			continue
		}
		for _, n := range o.ns {
			vs = append(vs, variant{c, n})
		}
	}
	return vs
}

// bpfSample is the run time and run count of the datapath programs over
// one measurement, with the measurement's length and operations
// (transactions or connections; 0 for throughput).
type bpfSample struct {
	Runtime time.Duration
	Runs    uint64
	Seconds float64
	Ops     int64
}

// sub returns the programs' cost between two readings.
func (s bpfSample) sub(before bpfSample) bpfSample {
	return bpfSample{Runtime: s.Runtime - before.Runtime, Runs: s.Runs - before.Runs}
}

// summary is the median and range of a sample, with this report's
// formatting.
type summary stats.Summary

func summarize(xs []float64) summary { return summary(stats.Summarize(xs)) }

// spread is the range relative to the median.
func (s summary) spread() float64 { return (s.Hi - s.Lo) / s.Med }

// series selects the numbers that a ratio compares.
type series int

const (
	// seriesRate compares what the measure achieved per second.
	seriesRate series = iota
	// seriesCPU compares CPU time per operation, which a busy machine
	// disturbs less than rates: other load takes CPU away from the
	// benchmark, but adds to the CPU time of its operations only through
	// caches and contention.
	seriesCPU
)

func (s series) String() string {
	if s == seriesCPU {
		return "CPU"
	}
	return "rate"
}

// ratios compares v with (a) round by round, which cancels machine-wide
// drift that affects both alike: v's rate over a's, or a's CPU cost over
// v's. Either way 1 means no overhead and less is worse.
func (r *report) ratios(s series, v variant, m measure) []float64 {
	base := variant{cfg: cfgPlain}
	num, den := r.values[v][m], r.values[base][m]
	if s == seriesCPU {
		num, den = r.cost[base][m], r.cost[v][m]
	}
	var out []float64
	for i := range min(len(num), len(den)) {
		if den[i] > 0 && num[i] > 0 {
			out = append(out, num[i]/den[i])
		}
	}
	return out
}

func scale(m measure, x float64) float64 {
	if m == measureThroughput {
		return x / 1e9
	}
	return x
}

func formatValue(m measure, s summary) string {
	if s.N == 0 {
		return "-"
	}
	f := "%.0f [%.0f-%.0f]"
	if m == measureThroughput {
		f = "%.2f [%.2f-%.2f]"
	}
	str := fmt.Sprintf(f, scale(m, s.Med), scale(m, s.Lo), scale(m, s.Hi))
	if s.N > 1 {
		str += fmt.Sprintf(" ±%.1f%%", 50*s.spread())
	}
	return str
}

func formatCost(m measure, s summary) string {
	if s.N == 0 {
		return "-"
	}
	f, k := "%.1f [%.1f-%.1f]", 1e6 // µs per transaction or connection
	if m == measureThroughput {
		f, k = "%.0f [%.0f-%.0f]", 1e3 // ms per GB
	}
	return fmt.Sprintf(f, k*s.Med, k*s.Lo, k*s.Hi)
}

func formatRatio(s summary) string {
	if s.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f [%.3f-%.3f]", s.Med, s.Lo, s.Hi)
}

// flatness compares b/a at the smallest and largest N for measure m.
type flatness struct {
	from, to summary
	change   float64
	flat     bool
	// overlap says the two ranges overlap: the change is within noise.
	overlap bool
}

func (r *report) flatness(s series, m measure) (flatness, bool) {
	ns := r.opts.ns
	if !r.opts.has(cfgRampart) || len(ns) < 2 {
		return flatness{}, false
	}
	f := flatness{
		from: summarize(r.ratios(s, variant{cfgRampart, ns[0]}, m)),
		to:   summarize(r.ratios(s, variant{cfgRampart, ns[len(ns)-1]}, m)),
	}
	if f.from.N == 0 || f.to.N == 0 {
		return flatness{}, false
	}
	f.change = f.to.Med/f.from.Med - 1
	f.flat = math.Abs(f.change) <= r.opts.flatTolerance
	f.overlap = f.to.Lo <= f.from.Hi && f.from.Lo <= f.to.Hi
	return f, true
}

// print writes the tables, ratios and verdicts.
func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "Rampart datapath benchmark: %d round(s) x %v per measure; each round takes every measure on every configuration in turn (order rotated each round)\n", o.reps, o.duration)
	fmt.Fprintf(w, "  kernel %s, %d CPUs, %s\n", r.env.kernel, r.env.cpus, r.env.goVersion)
	if r.env.iperf != "" {
		fmt.Fprintf(w, "  %s\n", r.env.iperf)
	}
	if r.env.iptables != "" {
		fmt.Fprintf(w, "  %s\n", r.env.iptables)
	}
	fmt.Fprintf(w, "  load average (1/5/15 min): before %s, after %s\n", r.env.loadBefore, r.env.loadAfter)
	fmt.Fprintf(w, "  traffic: IPv4 TCP %v -> %v (b: 10.250.2k+1.2 -> 10.250.2k+2.2 for the k-th N), routed through a router namespace\n", clientAddr, serverAddr)
	if o.has(cfgRampart) {
		mode := "local delivery ON (bpf_redirect_peer from the client's veth into the server's namespace and back; the node's default)"
		if !o.localRedirect {
			mode = "local delivery OFF (routed through the router namespace, as a)"
		}
		fmt.Fprintf(w, "  b: %s\n", mode)
		fmt.Fprintf(w, "  b: default deny both ways, N rows at the client's egress and N at the server's ingress; flow events %q, drained", o.eventsName)
		if o.bpfStats {
			fmt.Fprint(w, "; eBPF run time statistics ON (slows b a little)")
		}
		fmt.Fprintln(w)
	}
	if o.has(cfgIptables) || o.has(cfgIptablesWorst) {
		fmt.Fprintln(w, "  c: FORWARD policy DROP, conntrack RELATED,ESTABLISHED accept first, then N rules; the accept for the traffic after N/2 (c) or N (c-worst) rules")
	}

	fmt.Fprintf(w, "\nAbsolute: median [min-max] ±half-range%% over %d round(s)\n", o.reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := []string{"config", "", "N"}
	for _, m := range o.measures {
		hdr = append(hdr, m.header())
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, v := range r.variants {
		n := "-"
		if v.n > 0 {
			n = fmt.Sprint(v.n)
		}
		row := []string{string(v.cfg), v.cfg.describe(), n}
		for _, m := range o.measures {
			row = append(row, formatValue(m, summarize(r.values[v][m])))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nCPU per operation: median [min-max] of client + server + this process; in brackets after b, this process's part (b's flow event reader)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr = []string{"config", "N"}
	for _, m := range o.measures {
		hdr = append(hdr, m.costHeader())
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, v := range r.variants {
		n := "-"
		if v.n > 0 {
			n = fmt.Sprint(v.n)
		}
		row := []string{string(v.cfg), n}
		for _, m := range o.measures {
			c := formatCost(m, summarize(r.cost[v][m]))
			if v.cfg == cfgRampart {
				if self := summarize(r.selfCost[v][m]); self.N > 0 {
					k, f := 1e6, " (reader %.1f)"
					if m == measureThroughput {
						k, f = 1e3, " (reader %.0f)"
					}
					c += fmt.Sprintf(f, k*self.Med)
				}
			}
			row = append(row, c)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()

	if len(r.variants) > 1 {
		for _, s := range []series{seriesRate, seriesCPU} {
			if s == seriesRate {
				fmt.Fprintln(w, "\nRate ratio X/a: median of per-round ratios [min-max]")
			} else {
				fmt.Fprintln(w, "\nCPU ratio X/a = a's CPU per operation / X's: median of per-round ratios [min-max]")
			}
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			hdr = []string{"ratio", "N"}
			for _, m := range o.measures {
				hdr = append(hdr, string(m))
			}
			fmt.Fprintln(tw, strings.Join(hdr, "\t"))
			for _, v := range r.variants[1:] {
				row := []string{string(v.cfg) + "/a", fmt.Sprint(v.n)}
				for _, m := range o.measures {
					row = append(row, formatRatio(summarize(r.ratios(s, v, m))))
				}
				fmt.Fprintln(tw, strings.Join(row, "\t"))
			}
			tw.Flush()
		}
	}

	if o.has(cfgRampart) && len(o.ns) >= 2 {
		fmt.Fprintf(w, "\nb/a from N=%d to N=%d (flat: within ±%.0f%%)\n", o.ns[0], o.ns[len(o.ns)-1], 100*o.flatTolerance)
		for _, m := range o.measures {
			for _, s := range []series{seriesRate, seriesCPU} {
				f, ok := r.flatness(s, m)
				if !ok {
					continue
				}
				verdict := "flat"
				if !f.flat {
					verdict = "NOT flat"
				}
				if f.overlap {
					verdict += ", ranges overlap"
				} else {
					verdict += ", ranges disjoint"
				}
				fmt.Fprintf(w, "  %-10s %-4v  %.3f -> %.3f  (%+.1f%%)  %s\n", m, s, f.from.Med, f.to.Med, 100*f.change, verdict)
			}
		}
	}
	if o.has(cfgRampart) {
		fmt.Fprintf(w, "\nGoal b/a >= %.2f (median):\n", goalRatio)
		for _, m := range o.measures {
			for _, s := range []series{seriesRate, seriesCPU} {
				var parts []string
				for _, n := range o.ns {
					sum := summarize(r.ratios(s, variant{cfgRampart, n}, m))
					mark := "met"
					if !(sum.Med >= goalRatio) {
						mark = "MISSED"
					}
					parts = append(parts, fmt.Sprintf("N=%d %.3f %s", n, sum.Med, mark))
				}
				fmt.Fprintf(w, "  %-10s %-4v  %s\n", m, s, strings.Join(parts, "; "))
			}
		}
	}
	r.printProgCost(w)
	r.printBPF(w)
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, n)
		}
	}
}

// printBPF prints what the datapath programs cost per run, per operation
// and in CPU time, when -bpf-stats collected it.
func (r *report) printBPF(w io.Writer) {
	var rows []string
	for _, v := range r.variants {
		for _, m := range r.opts.measures {
			samples := r.bpf[v][m]
			if len(samples) == 0 {
				continue
			}
			var perRun, perOp, runsPerOp, cpu []float64
			for _, s := range samples {
				if s.Runs == 0 || s.Seconds <= 0 {
					continue
				}
				perRun = append(perRun, float64(s.Runtime.Nanoseconds())/float64(s.Runs))
				cpu = append(cpu, 100*s.Runtime.Seconds()/s.Seconds)
				if s.Ops > 0 {
					perOp = append(perOp, float64(s.Runtime.Nanoseconds())/float64(s.Ops))
					runsPerOp = append(runsPerOp, float64(s.Runs)/float64(s.Ops))
				}
			}
			op, rpo := "-", "-"
			if len(perOp) > 0 {
				op = fmt.Sprintf("%.0f", summarize(perOp).Med)
				rpo = fmt.Sprintf("%.1f", summarize(runsPerOp).Med)
			}
			rows = append(rows, fmt.Sprintf("%s\t%d\t%s\t%.0f\t%s\t%s\t%.1f%%",
				v.cfg, v.n, m, summarize(perRun).Med, rpo, op, summarize(cpu).Med))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\neBPF program cost (-bpf-stats, medians; collecting the statistics adds a little to every run)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "config\tN\tmeasure\tns/run\truns/op\tns/op\tCPU (of one core)")
	for _, row := range rows {
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// printProgCost prints the per-packet cost of each path through the
// programs at every N, and how it changes from the smallest N to the
// largest.
func (r *report) printProgCost(w io.Writer) {
	if len(r.progCaseNames) == 0 {
		return
	}
	ns := r.opts.ns
	reps := len(r.progCost[r.progCaseNames[0]][ns[0]])
	fmt.Fprintf(w, "\nPer-packet cost of the programs: BPF_PROG_TEST_RUN, %d runs per path, kernel-timed, ns/packet, median of %d (flow events off)\n",
		r.opts.progRepeat, reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := []string{"path"}
	for _, n := range ns {
		hdr = append(hdr, fmt.Sprintf("N=%d", n))
	}
	if len(ns) > 1 {
		hdr = append(hdr, "change")
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, name := range r.progCaseNames {
		row := []string{name}
		var first, last float64
		for i, n := range ns {
			s := summarize(r.progCost[name][n])
			row = append(row, fmt.Sprintf("%.0f [%.0f-%.0f]", s.Med, s.Lo, s.Hi))
			if i == 0 {
				first = s.Med
			}
			last = s.Med
		}
		if len(ns) > 1 {
			row = append(row, fmt.Sprintf("%+.1f%%", 100*(last/first-1)))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
}
