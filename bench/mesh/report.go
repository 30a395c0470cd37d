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

// The sides of a proxied configuration.
const (
	sideClient = 0
	sideServer = 1
)

var sideNames = [2]string{"client", "server"}

// sample is one measurement of one configuration at one load.
type sample struct {
	// rate is the rate of successful requests.
	rate                float64
	p50, p90, p99, pmax time.Duration
	ok, errs            int
	// wall is the time in seconds between the two CPU readings, which
	// enclose the measured load.
	wall float64
	// cpu is the CPU seconds each side's processes used in wall.
	cpu [2]float64
	// mem is the largest memory of each side sampled during the load
	// (groupMemory), in bytes.
	mem [2]float64
}

// util is the CPU the proxy pair used, in cores.
func (s sample) util() float64 {
	if s.wall <= 0 {
		return 0
	}
	return (s.cpu[sideClient] + s.cpu[sideServer]) / s.wall
}

// vcpuPer1k is the CPU of one side, or of both with side < 0, in cores per
// 1,000 requests per second.
func (s sample) vcpuPer1k(side int) float64 {
	if s.wall <= 0 || s.rate <= 0 {
		return math.NaN()
	}
	cpu := s.cpu[sideClient] + s.cpu[sideServer]
	if side >= 0 {
		cpu = s.cpu[side]
	}
	return cpu / s.wall / (s.rate / 1000)
}

// perCore is the requests per second per core the proxy pair used.
func (s sample) perCore() float64 {
	if u := s.util(); u > 0 {
		return s.rate / u
	}
	return math.NaN()
}

// environment describes the machine and tools of a run.
type environment struct {
	kernel, goVersion, nginx string
	// streamModule is the nginx stream module loaded by (e) and (f).
	streamModule          string
	cpus                  int
	loadBefore, loadAfter string
	elapsed               time.Duration
}

// report holds every value of a run.
type report struct {
	opts options
	env  environment
	// samples[c][l] holds one sample per round, in round order.
	samples map[config]map[load][]sample
	notes   []string
}

func newReport(o options) *report {
	r := &report{opts: o, samples: map[config]map[load][]sample{}}
	for _, c := range o.configs {
		r.samples[c] = map[load][]sample{}
	}
	return r
}

// series returns f of c's samples at l, one value per round.
func (r *report) series(c config, l load, f func(sample) float64) []float64 {
	var out []float64
	for _, s := range r.samples[c][l] {
		if v := f(s); !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

// added returns, per round, c's latency percentile minus (a)'s in the
// same round, in seconds: the drift of a busy machine between rounds
// cancels.
func (r *report) added(c config, l load, pct func(sample) time.Duration) []float64 {
	base, xs := r.samples[cfgDirect][l], r.samples[c][l]
	var out []float64
	for i := range min(len(base), len(xs)) {
		out = append(out, (pct(xs[i]) - pct(base[i])).Seconds())
	}
	return out
}

// perCoreRatio returns, per round, c's requests per proxy core at the
// maximum rate over base's in the same round: over nginx's (d) for the
// goals, over nginx L4's (e) for b's like-for-like comparison.
func (r *report) perCoreRatio(c, base config) []float64 {
	bs, xs := r.samples[base][loadMax], r.samples[c][loadMax]
	var out []float64
	for i := range min(len(bs), len(xs)) {
		if b, x := bs[i].perCore(), xs[i].perCore(); b > 0 && x > 0 {
			out = append(out, x/b)
		}
	}
	return out
}

// summary is the median and range of a sample, with this report's
// formatting.
type summary stats.Summary

func summarize(xs []float64) summary { return summary(stats.Summarize(xs)) }

// format renders the summary with a printf verb for one number, scaled by
// k: "0.231 [0.220-0.250]".
func (s summary) format(verb string, k float64) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return fmt.Sprintf(verb, k*s.Med)
	}
	return fmt.Sprintf(verb+" ["+verb+" "+verb+"]", k*s.Med, k*s.Lo, k*s.Hi)
}

// Istio's published figures for 1.24, from
// https://istio.io/latest/docs/ops/deployment/performance-and-scalability/
// (1,000 requests/s of HTTP/1.1 with 1 KB payloads through each proxy,
// mutual TLS, on their test cluster; not measured here).
const (
	istioVersion           = "1.24"
	istioSidecarVCPU       = 0.20
	istioSidecarMB         = 60
	istioZtunnelVCPU       = 0.06
	istioZtunnelMB         = 12
	istioZtunnelPairP90Add = 0.17e-3 // seconds, two ztunnels
)

// The goals, from the issue.
const (
	goalL4VCPU   = istioZtunnelVCPU // (b), per proxy and 1,000 requests/s
	goalL7VCPU   = istioSidecarVCPU // (c), per proxy and 1,000 requests/s
	goalL7AddP90 = 0.5e-3           // (c), seconds added at p90 by the pair
)

// goal is one verdict of the Goal section.
type goal struct {
	what   string
	value  string
	met    bool
	absent string // why it could not be judged; empty when judged
}

// goals judges the goals on the medians. CPU goals hold for each
// side: Istio's figures are per proxy, and the server side of (c) does
// more than the client side.
func (r *report) goals() []goal {
	var gs []goal
	cpuGoal := func(c config, limit float64) goal {
		g := goal{what: fmt.Sprintf("%s: vCPU per 1,000 req/s at most %.2f on each side", c, limit)}
		if !r.opts.has(c) {
			g.absent = "not measured"
			return g
		}
		cl := summarize(r.series(c, loadFixed, func(s sample) float64 { return s.vcpuPer1k(sideClient) }))
		sv := summarize(r.series(c, loadFixed, func(s sample) float64 { return s.vcpuPer1k(sideServer) }))
		g.value = fmt.Sprintf("client %.3f, server %.3f", cl.Med, sv.Med)
		g.met = cl.Med <= limit && sv.Med <= limit
		return g
	}
	gs = append(gs, cpuGoal(cfgL4, goalL4VCPU), cpuGoal(cfgL7, goalL7VCPU))
	g := goal{what: fmt.Sprintf("c: added p90 at %.0f req/s at most %.1f ms", r.opts.rate, goalL7AddP90*1e3)}
	if r.opts.has(cfgL7) {
		s := summarize(r.added(cfgL7, loadFixed, func(s sample) time.Duration { return s.p90 }))
		g.value = fmt.Sprintf("%+.3f ms", s.Med*1e3)
		g.met = s.Med <= goalL7AddP90
	} else {
		g.absent = "not measured"
	}
	gs = append(gs, g)
	for _, c := range []config{cfgL4, cfgL7} {
		g := goal{what: fmt.Sprintf("%s: max req/s per proxy core at least nginx's (d)", c)}
		switch {
		case !r.opts.has(c):
			g.absent = "not measured"
		case !r.opts.has(cfgNginx):
			g.absent = "d not measured"
		default:
			s := summarize(r.perCoreRatio(c, cfgNginx))
			g.value = fmt.Sprintf("%s/d = %.2f", c, s.Med)
			g.met = s.Med >= 1
		}
		gs = append(gs, g)
	}
	return gs
}

// comparison is one line of the L4 comparison section: not a goal, so
// without a verdict.
type comparison struct {
	what, value string
	absent      string // why it could not be computed; empty when it was
}

// l4Comparisons sets b beside its like-for-like peer, nginx relaying TCP
// with mutual TLS (e), on the medians, and prints the plaintext relay
// pair's (f) CPU: the floor under both, what two relays that read and
// write the bytes in user space cost on this machine before any TLS or
// policy. (d), the goals' reference, parses HTTP; (e) and b do not.
func (r *report) l4Comparisons() []comparison {
	vcpu := func(c config, side int) float64 {
		return summarize(r.series(c, loadFixed, func(s sample) float64 { return s.vcpuPer1k(side) })).Med
	}
	absent := func(cs ...config) string {
		for _, c := range cs {
			if !r.opts.has(c) {
				return string(c) + " not measured"
			}
		}
		return ""
	}
	cpu := comparison{what: "b: vCPU per 1,000 req/s against nginx L4 mTLS (e)", absent: absent(cfgL4, cfgNginxL4)}
	if cpu.absent == "" {
		cpu.value = fmt.Sprintf("client %.3f vs %.3f, server %.3f vs %.3f",
			vcpu(cfgL4, sideClient), vcpu(cfgNginxL4, sideClient), vcpu(cfgL4, sideServer), vcpu(cfgNginxL4, sideServer))
	}
	perCore := comparison{what: "b: max req/s per proxy core against nginx L4 mTLS (e)", absent: absent(cfgL4, cfgNginxL4)}
	if perCore.absent == "" {
		perCore.value = fmt.Sprintf("b/e = %.2f", summarize(r.perCoreRatio(cfgL4, cfgNginxL4)).Med)
	}
	floor := comparison{what: "floor: plaintext L4 relay pair (f), vCPU per 1,000 req/s", absent: absent(cfgNginxTCP)}
	if floor.absent == "" {
		floor.value = fmt.Sprintf("client %.3f, server %.3f", vcpu(cfgNginxTCP, sideClient), vcpu(cfgNginxTCP, sideServer))
	}
	return []comparison{cpu, perCore, floor}
}

func ms(d time.Duration) float64 { return d.Seconds() * 1e3 }

// print writes the tables, Istio's figures and the verdicts.
func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "Rampart mesh benchmark: %d round(s); each round measures every configuration at both loads, order rotated every round\n", o.reps)
	fmt.Fprintf(w, "  %v per measurement after %v of warm-up on the same connections; %d keep-alive HTTP/1.1 connections; GET %s, %d-byte response\n",
		o.duration, o.warmup, o.conns, benchPath, o.body)
	fmt.Fprintf(w, "  kernel %s, %d CPUs, %s", r.env.kernel, r.env.cpus, r.env.goVersion)
	if r.env.nginx != "" {
		fmt.Fprintf(w, ", %s", r.env.nginx)
	}
	if r.env.streamModule != "" {
		fmt.Fprintf(w, " (stream module %s)", r.env.streamModule)
	}
	fmt.Fprintln(w)
	if o.proxyProcs > 0 {
		fmt.Fprintf(w, "  Rampart proxy processes run with GOMAXPROCS=%d (-proxy-gomaxprocs); the load generator and the application with Go's default\n", o.proxyProcs)
	}
	fmt.Fprintf(w, "  load average (1/5/15 min): before %s, after %s; run took %v\n", r.env.loadBefore, r.env.loadAfter, r.env.elapsed.Round(time.Second))
	for _, c := range o.configs {
		fmt.Fprintf(w, "  %s  %-36s %s\n", c, c.describe(), c.detail())
	}
	fmt.Fprintln(w, "  CPU: user+system time of each side's processes (schedstat); memory: resident set (nginx: the master's plus the worker's private pages)")
	fmt.Fprintln(w, "  Values are median [min max] over rounds; differences and ratios are taken within each round first.")

	fmt.Fprintf(w, "\nLatency at %.0f req/s (open loop), ms\n", o.rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "config\tp50\tp90\tp99\tmax\tachieved req/s")
	for _, c := range o.configs {
		f := func(pct func(sample) time.Duration) string {
			return summarize(r.series(c, loadFixed, func(s sample) float64 { return ms(pct(s)) })).format("%.3f", 1)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c,
			f(func(s sample) time.Duration { return s.p50 }), f(func(s sample) time.Duration { return s.p90 }),
			f(func(s sample) time.Duration { return s.p99 }), f(func(s sample) time.Duration { return s.pmax }),
			summarize(r.series(c, loadFixed, func(s sample) float64 { return s.rate })).format("%.0f", 1))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nAdded latency against a at %.0f req/s, ms (per-round difference)\n", o.rate)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "config\tp50\tp90\tp99")
	for _, c := range o.configs {
		if !c.proxied() {
			continue
		}
		f := func(pct func(sample) time.Duration) string {
			return summarize(r.added(c, loadFixed, pct)).format("%+.3f", 1e3)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c,
			f(func(s sample) time.Duration { return s.p50 }), f(func(s sample) time.Duration { return s.p90 }),
			f(func(s sample) time.Duration { return s.p99 }))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nProxy cost at %.0f req/s, per side: vCPU per 1,000 req/s; memory MB, the largest sampled during the measurement\n", o.rate)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "config\tvCPU/1k client\tvCPU/1k server\tvCPU/1k pair\tMB client\tMB server")
	for _, c := range o.configs {
		if !c.proxied() {
			continue
		}
		cpu := func(side int) string {
			return summarize(r.series(c, loadFixed, func(s sample) float64 { return s.vcpuPer1k(side) })).format("%.3f", 1)
		}
		mem := func(side int) string {
			return summarize(r.series(c, loadFixed, func(s sample) float64 { return s.mem[side] })).format("%.1f", 1.0/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c, cpu(sideClient), cpu(sideServer), cpu(-1), mem(sideClient), mem(sideServer))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nMaximum rate (closed loop, %d connections)\n", o.conns)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "config\treq/s\tproxy cores used (pair)\treq/s per proxy core\tp50 ms\tp99 ms\tpeak MB client / server")
	for _, c := range o.configs {
		f := func(fn func(sample) float64, verb string) string {
			return summarize(r.series(c, loadMax, fn)).format(verb, 1)
		}
		cores, perCore, peak := "-", "-", "-"
		if c.proxied() {
			cores = f(sample.util, "%.2f")
			perCore = f(sample.perCore, "%.0f")
			cl := summarize(r.series(c, loadMax, func(s sample) float64 { return s.mem[sideClient] }))
			sv := summarize(r.series(c, loadMax, func(s sample) float64 { return s.mem[sideServer] }))
			peak = fmt.Sprintf("%.1f / %.1f", cl.Hi/(1<<20), sv.Hi/(1<<20))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c, f(func(s sample) float64 { return s.rate }, "%.0f"), cores, perCore,
			f(func(s sample) float64 { return ms(s.p50) }, "%.3f"), f(func(s sample) float64 { return ms(s.p99) }, "%.3f"), peak)
	}
	tw.Flush()

	r.printIstio(w)

	fmt.Fprintln(w, "\nGoals (medians)")
	for _, g := range r.goals() {
		switch {
		case g.absent != "":
			fmt.Fprintf(w, "  %-62s  %s\n", g.what, g.absent)
		case g.met:
			fmt.Fprintf(w, "  %-62s  %-26s met\n", g.what, g.value)
		default:
			fmt.Fprintf(w, "  %-62s  %-26s MISSED\n", g.what, g.value)
		}
	}
	if o.has(cfgL4) || o.hasFunc(config.stream) {
		fmt.Fprintln(w, "\nL4 peers (medians; not goals)")
		for _, c := range r.l4Comparisons() {
			if c.absent != "" {
				fmt.Fprintf(w, "  %-62s  %s\n", c.what, c.absent)
			} else {
				fmt.Fprintf(w, "  %-62s  %s\n", c.what, c.value)
			}
		}
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, n)
		}
	}
}

// printIstio sets the measured per-proxy figures beside Istio's published
// ones.
func (r *report) printIstio(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\nBeside Istio %s's published figures (per proxy at 1,000 req/s; theirs from istio.io, not measured here)\n", istioVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "proxy\tvCPU per 1k req/s\tmemory MB\tadded p90 ms, pair")
	fmt.Fprintf(tw, "Istio sidecar (Envoy)\t%.2f\t%d\t-\n", istioSidecarVCPU, istioSidecarMB)
	fmt.Fprintf(tw, "Istio ztunnel\t%.2f\t%d\t%.2f\n", istioZtunnelVCPU, istioZtunnelMB, istioZtunnelPairP90Add*1e3)
	for _, c := range o.configs {
		if !c.proxied() {
			continue
		}
		for side := range 2 {
			cpu := summarize(r.series(c, loadFixed, func(s sample) float64 { return s.vcpuPer1k(side) }))
			mem := summarize(r.series(c, loadFixed, func(s sample) float64 { return s.mem[side] }))
			add := "-"
			if side == sideClient {
				add = fmt.Sprintf("%.3f", 1e3*summarize(r.added(c, loadFixed, func(s sample) time.Duration { return s.p90 })).Med)
			}
			fmt.Fprintf(tw, "%s %s, %s side\t%.3f\t%.1f\t%s\n", c, c.describe(), sideNames[side], cpu.Med, mem.Med/(1<<20), add)
		}
	}
	tw.Flush()
	if o.rate != 1000 {
		fmt.Fprintf(w, "  (measured at %.0f req/s, CPU normalised to 1,000)\n", o.rate)
	}
}

// describeSample is one progress line's part for a sample.
func describeSample(c config, s sample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %.0f/s p90 %.3fms", c, s.rate, ms(s.p90))
	if c.proxied() {
		fmt.Fprintf(&b, " %.2f cores", s.util())
	}
	return b.String()
}
