// Command datapath measures what Rampart's eBPF datapath costs on the wire,
// against plain routing and against iptables, in one run.
//
// Two endpoint namespaces, client and server, are routed through a third
// namespace over veth pairs, like pods through a node. Every configuration
// gets such a topology of its own, all set up at once, and each round
// takes every measure on every configuration in turn:
//
//	a        plain veth pairs and routes
//	b        Rampart's datapath on both router-side veths (TCX), default
//	         deny in every direction, N policy rows at the client's egress
//	         and N at the server's ingress
//	c        iptables FORWARD chain: conntrack ESTABLISHED accept first, then
//	         N rules with the matching accept after N/2 of them
//	c-worst  as c, with the matching accept after all N rules
//
// and for each, TCP throughput (iperf3), request/response transactions per
// second on one connection, and new connections per second. It prints the
// medians, their spread and the ratios to (a). docs/bench-datapath.md
// describes the method.
//
//	go run ./bench/datapath                    # as root; about 11 minutes
//	go run ./bench/datapath -quick             # smoke test, under a minute
//	go run ./bench/datapath -duration 3s -reps 7 -n 10,1000,10000
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/rampartsec/rampart/bench/internal/benchcmd"
	"github.com/rampartsec/rampart/internal/datapath"
)

// Bounds on the flags, so that every loop of a run is bounded too.
const (
	maxDuration = 10 * time.Minute
	minDuration = 200 * time.Millisecond
	maxReps     = 50
	// maxProgRepeat bounds BPF_PROG_TEST_RUN loops: about ten seconds.
	maxProgRepeat = 10_000_000
)

// config is one of the compared setups.
type config string

const (
	cfgPlain         config = "a"
	cfgRampart       config = "b"
	cfgIptables      config = "c"
	cfgIptablesWorst config = "c-worst"
)

var allConfigs = []config{cfgPlain, cfgRampart, cfgIptables, cfgIptablesWorst}

func (c config) describe() string {
	switch c {
	case cfgPlain:
		return "plain veth + routes"
	case cfgRampart:
		return "Rampart eBPF (TCX)"
	case cfgIptables:
		return "iptables, accept mid-chain"
	case cfgIptablesWorst:
		return "iptables, accept after all N"
	}
	return string(c)
}

// iptables reports whether c is one of the iptables configurations.
func (c config) iptables() bool { return c == cfgIptables || c == cfgIptablesWorst }

// measure is one of the measured quantities.
type measure string

const (
	measureThroughput measure = "throughput"
	measureRR         measure = "rr"
	measureCRR        measure = "crr"
)

var allMeasures = []measure{measureThroughput, measureRR, measureCRR}

// header is the measure's column title, with its unit.
func (m measure) header() string {
	switch m {
	case measureThroughput:
		return "throughput Gbit/s"
	case measureRR:
		return "RR trans/s"
	case measureCRR:
		return "CRR conn/s"
	}
	return string(m)
}

// costHeader is the title of the measure's CPU cost column.
func (m measure) costHeader() string {
	switch m {
	case measureThroughput:
		return "throughput CPU ms/GB"
	case measureRR:
		return "RR CPU µs/trans"
	case measureCRR:
		return "CRR CPU µs/conn"
	}
	return string(m)
}

// options configures a run.
type options struct {
	duration time.Duration
	reps     int
	ns       []int
	configs  []config
	measures []measure
	// settle is the pause between setting a configuration up and measuring
	// it, for the namespaces torn down before to finish dying.
	settle time.Duration
	// flatTolerance is how far b/a at the largest N may be from b/a at the
	// smallest and still count as flat.
	flatTolerance float64
	iperf3        string
	iptables      string
	// events is the datapath's flow event level; a reader drains the
	// events as the agent would.
	events     datapath.EventLevel
	eventsName string
	// bpfStats collects the run time of the datapath programs. It is a
	// kernel-wide switch that adds to every program run, so the throughput
	// numbers of such a run are not the headline ones.
	bpfStats bool
	// progRepeat is how many times each packet path runs through the
	// programs with BPF_PROG_TEST_RUN; 0 skips that measurement.
	progRepeat int
	// localRedirect keeps the datapath's default for b: traffic between
	// the endpoints is delivered from one router-side veth into the other
	// endpoint's namespace (bpf_redirect_peer). Off, b is routed through
	// the router namespace like a, with the programs on both veths.
	localRedirect bool
	// progress receives a line per configuration and round.
	progress io.Writer
}

func (o *options) has(c config) bool   { return slices.Contains(o.configs, c) }
func (o *options) hasM(m measure) bool { return slices.Contains(o.measures, m) }

func parseFlags(args []string, progress io.Writer) (options, error) {
	fs := flag.NewFlagSet("datapath", flag.ContinueOnError)
	o := options{progress: progress}
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measurement (iperf3 rounds it up to whole seconds)")
	fs.IntVar(&o.reps, "reps", 9, "rounds; each round takes every measure on every configuration once")
	quick := fs.Bool("quick", false, "smoke test: -duration 1s -reps 1 unless given")
	nList := fs.String("n", "10,10000", "comma-separated policy sizes (rows per direction for b, rules for c)")
	cfgList := fs.String("configs", "a,b,c,c-worst", "comma-separated configurations: a, b, c, c-worst")
	mList := fs.String("measures", "throughput,rr,crr", "comma-separated measures: throughput, rr, crr")
	fs.DurationVar(&o.settle, "settle", 500*time.Millisecond, "pause after setting up a configuration")
	fs.Float64Var(&o.flatTolerance, "flat", 0.03, "largest relative change of b/a between the smallest and largest N still called flat")
	fs.StringVar(&o.iperf3, "iperf3", "iperf3", "iperf3 binary")
	fs.StringVar(&o.iptables, "iptables", "iptables", "iptables binary; <binary>-restore must exist beside it (iptables-legacy selects the legacy backend)")
	events := fs.String("events", "default", "datapath flow events: default (drops and new connections), drops, none")
	fs.IntVar(&o.progRepeat, "prog-repeat", 200_000, "runs per packet path for the BPF_PROG_TEST_RUN cost of the programs (0 skips it)")
	fs.BoolVar(&o.localRedirect, "local-redirect", true, "b delivers between the endpoints with bpf_redirect_peer, the node's default (false: routed through the router namespace, as before)")
	fs.BoolVar(&o.bpfStats, "bpf-stats", false, "also report the datapath programs' run time per packet (turns on kernel-wide eBPF statistics, which costs a little on every program run)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = time.Second
		}
		if !set["reps"] {
			o.reps = 1
		}
		if !set["prog-repeat"] {
			o.progRepeat = 10_000
		}
	}
	o.eventsName = *events
	switch *events {
	case "default":
		o.events = datapath.EventsDefault
	case "drops":
		o.events = datapath.EventsDrops
	case "none":
		o.events = datapath.EventsNone
	default:
		return o, fmt.Errorf("-events: unknown level %q (want default, drops, none)", *events)
	}
	if o.duration < minDuration || o.duration > maxDuration {
		return o, fmt.Errorf("-duration %v out of range [%v, %v]", o.duration, minDuration, maxDuration)
	}
	if o.reps < 1 || o.reps > maxReps {
		return o, fmt.Errorf("-reps %d out of range [1, %d]", o.reps, maxReps)
	}
	if o.progRepeat < 0 || o.progRepeat > maxProgRepeat {
		return o, fmt.Errorf("-prog-repeat %d out of range [0, %d]", o.progRepeat, maxProgRepeat)
	}
	if o.settle < 0 || o.settle > time.Minute {
		return o, fmt.Errorf("-settle %v out of range [0, 1m]", o.settle)
	}
	for _, s := range benchcmd.SplitList(*nList) {
		n, err := strconv.Atoi(s)
		if err != nil || n < minEntries || n > maxEntries {
			return o, fmt.Errorf("-n: %q is not a policy size in [%d, %d]", s, minEntries, maxEntries)
		}
		if !slices.Contains(o.ns, n) {
			o.ns = append(o.ns, n)
		}
	}
	slices.Sort(o.ns)
	for _, s := range benchcmd.SplitList(*cfgList) {
		c := config(s)
		if !slices.Contains(allConfigs, c) {
			return o, fmt.Errorf("-configs: unknown configuration %q (want a, b, c, c-worst)", s)
		}
		if !o.has(c) {
			o.configs = append(o.configs, c)
		}
	}
	for _, s := range benchcmd.SplitList(*mList) {
		m := measure(s)
		if !slices.Contains(allMeasures, m) {
			return o, fmt.Errorf("-measures: unknown measure %q (want throughput, rr, crr)", s)
		}
		if !o.hasM(m) {
			o.measures = append(o.measures, m)
		}
	}
	switch {
	case len(o.configs) == 0 || len(o.measures) == 0:
		return o, errors.New("nothing to measure")
	case !o.has(cfgPlain):
		return o, errors.New("-configs must include a: every ratio is to it")
	case len(o.ns) == 0 && len(o.configs) > 1:
		return o, errors.New("-n: no policy size")
	case len(o.ns) > maxTopologyAddrs:
		return o, fmt.Errorf("-n: %d policy sizes, at most %d", len(o.ns), maxTopologyAddrs)
	}
	return o, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == loadgenCmd {
		os.Exit(loadgenMain(os.Args[2:]))
	}
	os.Exit(benchcmd.Main("datapath", os.Args[1:], os.Stdout, os.Stderr, parseFlags, run,
		(*report).print, "namespaces, servers and pins removed"))
}
