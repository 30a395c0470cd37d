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
//	   HTTP proxy, mutual TLS 1.3 between them, keep-alive everywhere
//	e  nginx as an L4 pair (stream module): TCP relays with mutual TLS 1.3
//	   between them, b's like-for-like peer
//	f  as e without TLS: the floor of any user-space L4 proxy pair on the
//	   machine
//
// first at a fixed rate (open loop, 1,000 requests/s by default) and then
// at the maximum rate (closed loop). It prints the latency added to (a),
// the proxies' CPU per 1,000 requests/s and memory, the maximum rate per
// proxy core, Istio's published figures beside them, and whether the
// goals are met. docs/bench-mesh.md describes the method.
//
//	go run ./bench/mesh                      # about 6.5 minutes
//	go run ./bench/mesh -quick               # smoke test, under a minute
//	go run ./bench/mesh -duration 10s -reps 7 -configs a,b,c
//	go run ./bench/mesh -configs a,b,c -proxy-gomaxprocs 1
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
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
	// maxProxyProcs bounds -proxy-gomaxprocs.
	maxProxyProcs = 256
)

// config is one of the compared setups.
type config string

const (
	cfgDirect config = "a"
	cfgL4     config = "b"
	cfgL7     config = "c"
	cfgNginx  config = "d"
	// cfgNginxL4 is b's like-for-like peer: nginx relaying TCP, with
	// mutual TLS between its two sides as b's HBONE tunnel has.
	cfgNginxL4 config = "e"
	// cfgNginxTCP relays TCP in plaintext on every hop: what two
	// user-space relays cost on the machine before any cryptography or
	// policy, the floor under b and e.
	cfgNginxTCP config = "f"
)

var allConfigs = []config{cfgDirect, cfgL4, cfgL7, cfgNginx, cfgNginxL4, cfgNginxTCP}

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
	case cfgNginxL4:
		return "nginx L4 mTLS pair"
	case cfgNginxTCP:
		return "nginx L4 plaintext pair"
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
	case cfgNginxL4:
		return "stream module, worker_processes 1 per side, TCP over mutual TLS 1.3 between them, a connection per client connection"
	case cfgNginxTCP:
		return "as e without TLS on any hop: the floor of a user-space L4 relay pair"
	}
	return ""
}

// proxied reports whether c has proxies whose cost is measured.
func (c config) proxied() bool { return c != cfgDirect }

// nginx reports whether c's proxies are nginx instances.
func (c config) nginx() bool { return c == cfgNginx || c.stream() }

// stream reports whether c's nginx relays TCP (the stream module, which
// Debian ships as a dynamic module) rather than HTTP.
func (c config) stream() bool { return c == cfgNginxL4 || c == cfgNginxTCP }

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
	// proxyProcs, if positive, is GOMAXPROCS of the Rampart proxy
	// processes; 0 leaves Go's default (the number of CPUs).
	proxyProcs int
	// profile, if set, is a directory where each Rampart proxy writes a
	// CPU profile of its life.
	profile string
	// settle is the pause between two measurements.
	settle time.Duration
	// progress receives a line per round and load.
	progress io.Writer
}

func (o *options) has(c config) bool { return slices.Contains(o.configs, c) }

// hasFunc reports whether a configuration of o satisfies f.
func (o *options) hasFunc(f func(config) bool) bool { return slices.ContainsFunc(o.configs, f) }

// proxyEnv returns the environment variables a Rampart proxy process gets
// besides the benchmark's own: GOMAXPROCS when procs is positive, so that
// its effect on the proxies can be measured without changing the load
// generator's or the application's.
func proxyEnv(procs int) []string {
	if procs <= 0 {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(procs)}
}

func parseFlags(args []string, progress io.Writer) (options, error) {
	fs := flag.NewFlagSet("mesh", flag.ContinueOnError)
	o := options{progress: progress}
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measurement")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measurement, on the same connections")
	fs.IntVar(&o.reps, "reps", 5, "rounds; each round measures every configuration at both loads, in an order rotated every round")
	fs.Float64Var(&o.rate, "rate", 1000, "requests per second of the fixed-rate load")
	fs.IntVar(&o.conns, "conns", 16, "keep-alive connections of the load generator")
	fs.IntVar(&o.body, "body", 1024, "response body size in bytes")
	cfgList := fs.String("configs", "a,b,c,d,e,f", "comma-separated configurations: a (direct), b (Rampart L4), c (Rampart L7, 20 rules), d (nginx HTTP), e (nginx L4 mTLS), f (nginx L4 plaintext)")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary for d, e and f")
	fs.IntVar(&o.proxyProcs, "proxy-gomaxprocs", 0, "GOMAXPROCS of the Rampart proxy processes only; 0 is Go's default")
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
	case o.proxyProcs < 0 || o.proxyProcs > maxProxyProcs:
		return o, fmt.Errorf("-proxy-gomaxprocs %d out of range [0, %d]", o.proxyProcs, maxProxyProcs)
	}
	for _, s := range benchcmd.SplitList(*cfgList) {
		c := config(s)
		if !slices.Contains(allConfigs, c) {
			return o, fmt.Errorf("-configs: unknown configuration %q (want a, b, c, d, e, f)", s)
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
