// Command mesh measures what Rampart's mesh proxy costs per request, in
// latency, CPU and memory, against no proxy and against nginx, in one run
// on one machine.
//
// The same HTTP/1.1 client load goes, in turn, through each configuration:
//
//	a  direct: the load generator talks to the application
//	b  Rampart L4 mTLS: a client-side and a server-side Rampart proxy, each
//	   a process of its own (two ztunnels), an HBONE tunnel between them
//	c  as b, plus HTTP authorization by 20 AuthorizationPolicy rules on the
//	   server side (policy.yaml), the request allowed by the last one
//	d  nginx from the distribution as a client-side and a server-side
//	   proxy, mutual TLS 1.3 between them, keep-alive everywhere
//
// first at a fixed rate (open loop, 1,000 requests/s by default) and then
// at the maximum rate (closed loop). It prints the latency added to (a),
// the proxies' CPU per 1,000 requests/s and memory, the maximum rate per
// proxy core, Istio's published figures beside them, and whether the
// goals are met. docs/bench-mesh.md describes the method.
//
//	go run ./bench/mesh                      # about 4 minutes
//	go run ./bench/mesh -quick               # smoke test, under a minute
//	go run ./bench/mesh -duration 10s -reps 7 -configs a,b,c
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampartsec/rampart/bench/internal/benchcmd"
)

// Bounds on the flags, so that every loop of a run is bounded too.
const (
	minDuration = 200 * time.Millisecond
	maxDuration = 10 * time.Minute
	maxWarmup   = time.Minute
	maxReps     = 50
	maxRate     = 100_000
	maxConns    = 1024
	maxBody     = 1 << 20
	// maxRequests bounds the requests, and so the latency samples, of one
	// fixed-rate measurement.
	maxRequests = 10_000_000
)

// config is one of the compared setups.
type config string

const (
	cfgDirect config = "a"
	cfgL4     config = "b"
	cfgL7     config = "c"
	cfgNginx  config = "d"
)

var allConfigs = []config{cfgDirect, cfgL4, cfgL7, cfgNginx}

func (c config) describe() string {
	switch c {
	case cfgDirect:
		return "direct, no proxy"
	case cfgL4:
		return "Rampart L4 mTLS"
	case cfgL7:
		return "Rampart mTLS + HTTP authz, 20 rules"
	case cfgNginx:
		return "nginx mTLS proxy pair"
	}
	return string(c)
}

// detail says how c is set up, for the report's header.
func (c config) detail() string {
	switch c {
	case cfgDirect:
		return "load generator -> application"
	case cfgL4:
		return "one Go process per side, HBONE (HTTP/2 CONNECT, mutual TLS 1.3) between them, no policy"
	case cfgL7:
		return "as b; the server side parses HTTP, 6 DENY + 14 ALLOW rules, allowed by the last"
	case cfgNginx:
		return "worker_processes 1 per side, HTTP/1.1 over mutual TLS 1.3 between them, keep-alive upstreams"
	}
	return ""
}

// proxied reports whether c has proxies whose cost is measured.
func (c config) proxied() bool { return c != cfgDirect }

// load is one of the two client loads.
type load string

const (
	loadFixed load = "fixed"
	loadMax   load = "max"
)

var allLoads = []load{loadFixed, loadMax}

// options configures a run.
type options struct {
	duration time.Duration
	// warmup runs the same load before each measurement, on the same
	// connections, unmeasured.
	warmup  time.Duration
	reps    int
	rate    float64
	conns   int
	body    int
	configs []config
	nginx   string
	// profile, if set, is a directory where each Rampart proxy writes a
	// CPU profile of its life.
	profile string
	// settle is the pause between two measurements.
	settle time.Duration
	// progress receives a line per round and load.
	progress io.Writer
}

func (o *options) has(c config) bool { return slices.Contains(o.configs, c) }

func parseFlags(args []string, progress io.Writer) (options, error) {
	fs := flag.NewFlagSet("mesh", flag.ContinueOnError)
	o := options{progress: progress}
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measurement, on the same connections")
	fs.IntVar(&o.reps, "reps", 5, "rounds; each round measures every configuration at both loads, in an order rotated every round")
	fs.Float64Var(&o.rate, "rate", 1000, "requests per second of the fixed-rate load")
	fs.IntVar(&o.conns, "conns", 16, "keep-alive connections of the load generator")
	fs.IntVar(&o.body, "body", 1024, "response body size in bytes")
	cfgList := fs.String("configs", "a,b,c,d", "comma-separated configurations: a (direct), b (Rampart L4), c (Rampart L7, 20 rules), d (nginx)")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary for d")
	fs.StringVar(&o.profile, "cpuprofile", "", "directory for CPU profiles of the Rampart proxies, <config>-<side>.pprof (profiling costs the proxies CPU: not for headline numbers)")
	fs.DurationVar(&o.settle, "settle", 300*time.Millisecond, "pause between measurements")
	quick := fs.Bool("quick", false, "smoke test: -duration 1s -warmup 300ms -reps 1 unless given")
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
		if !set["warmup"] {
			o.warmup = 300 * time.Millisecond
		}
		if !set["reps"] {
			o.reps = 1
		}
		if !set["settle"] {
			o.settle = 100 * time.Millisecond
		}
	}
	switch {
	case o.duration < minDuration || o.duration > maxDuration:
		return o, fmt.Errorf("-duration %v out of range [%v, %v]", o.duration, minDuration, maxDuration)
	case o.warmup < 0 || o.warmup > maxWarmup:
		return o, fmt.Errorf("-warmup %v out of range [0, %v]", o.warmup, maxWarmup)
	case o.reps < 1 || o.reps > maxReps:
		return o, fmt.Errorf("-reps %d out of range [1, %d]", o.reps, maxReps)
	case !(o.rate >= 1 && o.rate <= maxRate):
		return o, fmt.Errorf("-rate %v out of range [1, %d]", o.rate, maxRate)
	case o.rate*o.duration.Seconds() > maxRequests:
		return o, fmt.Errorf("-rate %v for %v is more than %d requests", o.rate, o.duration, maxRequests)
	case o.conns < 1 || o.conns > maxConns:
		return o, fmt.Errorf("-conns %d out of range [1, %d]", o.conns, maxConns)
	case o.body < 0 || o.body > maxBody:
		return o, fmt.Errorf("-body %d out of range [0, %d]", o.body, maxBody)
	case o.settle < 0 || o.settle > time.Minute:
		return o, fmt.Errorf("-settle %v out of range [0, 1m]", o.settle)
	}
	for _, s := range benchcmd.SplitList(*cfgList) {
		c := config(s)
		if !slices.Contains(allConfigs, c) {
			return o, fmt.Errorf("-configs: unknown configuration %q (want a, b, c, d)", s)
		}
		if !o.has(c) {
			o.configs = append(o.configs, c)
		}
	}
	// Keep the canonical order for the tables; rounds rotate it.
	slices.SortFunc(o.configs, func(x, y config) int { return strings.Compare(string(x), string(y)) })
	if !o.has(cfgDirect) {
		return o, errors.New("-configs must include a: added latency is measured against it")
	}
	return o, nil
}

func main() {
	if code := childMain(os.Args[1:]); code >= 0 {
		os.Exit(code)
	}
	os.Exit(benchcmd.Main("mesh", os.Args[1:], os.Stdout, os.Stderr, parseFlags, run,
		(*report).print, "child processes stopped"))
}
