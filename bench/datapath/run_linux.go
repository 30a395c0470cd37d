package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/bench/internal/host"
	"github.com/rampartsec/rampart/internal/datapath"
)

// bench is the state of one run.
type bench struct {
	o     options
	iperf string
	ipt   *iptables
	rp    *rampart
	// rulesets holds the iptables-restore input per iptables variant.
	rulesets map[variant]string
}

// run sets every variant up on namespaces of its own, then, round after
// round, takes each measure on every variant in turn, and returns the
// report. It removes everything it created before returning, also when
// ctx is cancelled.
func run(ctx context.Context, o options) (_ *report, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root: it creates network namespaces, attaches eBPF programs and loads iptables rules")
	}
	variants := variantsOf(o)
	rep := newReport(o, variants)
	rep.env = environment{kernel: host.KernelRelease(), goVersion: runtime.Version(), cpus: runtime.NumCPU()}
	b := &bench{o: o, rulesets: make(map[variant]string)}

	if o.hasM(measureThroughput) {
		if b.iperf, rep.env.iperf, err = findIperf(o.iperf3); err != nil {
			return nil, err
		}
	}
	if o.has(cfgIptables) || o.has(cfgIptablesWorst) {
		if b.ipt, err = findIptables(o.iptables); err != nil {
			return nil, err
		}
		rep.env.iptables = b.ipt.version
		for _, v := range variants {
			if !v.cfg.iptables() {
				continue
			}
			rows, err := policyRows(serverEP, datapath.Ingress, clientID, v.n)
			if err != nil {
				return nil, err
			}
			where := placeMiddle
			if v.cfg == cfgIptablesWorst {
				where = placeLast
			}
			rules, err := iptablesRules(rows, serverAddr, where)
			if err != nil {
				return nil, err
			}
			b.rulesets[v] = iptablesRuleset(rules)
		}
	}
	if o.has(cfgRampart) {
		for _, dir := range removeStalePins() {
			rep.notes = append(rep.notes, "removed stale pins of a killed run: "+dir)
		}
		pinDir := filepath.Join(datapath.BPFFSRoot, fmt.Sprintf("%s%d", pinPrefix, os.Getpid()))
		if o.bpfStats {
			// Global while held; the kernel turns it off again when this
			// process exits, however it exits.
			closer, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				return nil, fmt.Errorf("enable eBPF run time statistics: %w", err)
			}
			defer closer.Close()
		}
		cfg := datapath.Config{Events: o.events, DisableLocalRedirect: !o.localRedirect}
		if b.rp, err = openRampart(pinDir, o.ns, cfg, o.bpfStats); err != nil {
			return nil, fmt.Errorf("open datapath: %w", err)
		}
		defer func() {
			if cerr := b.rp.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("remove datapath pins: %w", cerr))
			}
			t := b.rp.totals
			rep.forwarded = t.Forwarded
			rep.notes = append(rep.notes, fmt.Sprintf(
				"Rampart counted %d packets forwarded and %d dropped; "+
					"%d flow events read, %d rate-limited, %d lost to a full ring buffer, %d conntrack create failures",
				t.Forwarded, t.Dropped, t.Events, t.EventsRateLimited, t.EventsRingbufFull, t.CTCreateFailed))
			for _, k := range slices.Sorted(maps.Keys(t.Drops)) {
				rep.notes = append(rep.notes, fmt.Sprintf("  dropped at %s: %d", k, t.Drops[k]))
			}
		}()
	}

	// Every variant gets its own namespaces, set up once and kept for the
	// whole run, so that each round can measure all variants within
	// seconds of each other.
	setups := make([]*setup, 0, len(variants))
	defer func() {
		for _, s := range setups {
			if terr := b.tearDown(s); terr != nil && err == nil {
				err = fmt.Errorf("%v: %w", s.v, terr)
			}
		}
	}()
	bIndex := 0
	for _, v := range variants {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The b variants share the datapath like the endpoints of one
		// node, so each gets endpoint ids and addresses of its own (see
		// endpointAddrs); the others keep topology 0's addresses.
		var eps [2]datapath.EndpointID
		k := 0
		if v.cfg == cfgRampart {
			eps = [2]datapath.EndpointID{datapath.EndpointID(2*bIndex + 1), datapath.EndpointID(2*bIndex + 2)}
			k = bIndex
			bIndex++
		}
		s, err := b.setUp(ctx, v, eps, k)
		if err != nil {
			return nil, fmt.Errorf("set up %v: %w", v, err)
		}
		setups = append(setups, s)
	}
	if err := host.Sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	for _, s := range setups {
		if err := b.check(s); err != nil {
			return nil, fmt.Errorf("%v: %w", s.v, err)
		}
	}

	rep.env.loadBefore = host.LoadAverage()
	for round := range o.reps {
		for _, m := range o.measures {
			var parts []string
			// Rotating the order spreads slow drift over all variants
			// instead of always favouring the first.
			for i := range setups {
				s := setups[(i+round)%len(setups)]
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				x, cost, selfCost, bs, err := b.measure(ctx, s, m)
				if err != nil {
					return nil, fmt.Errorf("round %d, %v, %s: %w", round+1, s.v, m, err)
				}
				rep.values[s.v][m] = append(rep.values[s.v][m], x)
				rep.cost[s.v][m] = append(rep.cost[s.v][m], cost)
				rep.selfCost[s.v][m] = append(rep.selfCost[s.v][m], selfCost)
				if bs != nil {
					rep.bpf[s.v][m] = append(rep.bpf[s.v][m], *bs)
				}
				parts = append(parts, fmt.Sprintf("%v %.4g", s.v, scale(m, x)))
			}
			fmt.Fprintf(o.progress, "round %d/%d %-10s %s\n", round+1, o.reps, m, strings.Join(parts, ", "))
		}
	}
	rep.env.loadAfter = host.LoadAverage()

	// Tear down before the program cost, which needs the datapath to
	// itself; the deferred tear-down then has nothing left to do.
	for _, s := range setups {
		if err := b.tearDown(s); err != nil {
			return nil, fmt.Errorf("%v: %w", s.v, err)
		}
	}
	setups = nil
	if b.rp != nil && o.progRepeat > 0 {
		if err := b.programCost(ctx, rep); err != nil {
			return nil, fmt.Errorf("program cost: %w", err)
		}
	}
	return rep, nil
}

// setup is one variant's namespaces, configuration and servers.
type setup struct {
	v     variant
	t     *topology
	att   *attachment
	echo  *echoServer
	iperf *iperfServer
	done  bool
}

// setUp creates fresh namespaces for v with the addresses of topology k,
// configures them and starts the servers. eps are the endpoint ids for a
// (b) variant.
func (b *bench) setUp(ctx context.Context, v variant, eps [2]datapath.EndpointID, k int) (s *setup, err error) {
	s = &setup{v: v}
	defer func() {
		if err != nil {
			b.tearDown(s)
			s = nil
		}
	}()
	if s.t, err = newTopology(k); err != nil {
		return s, err
	}
	switch {
	case v.cfg == cfgRampart:
		if s.att, err = b.rp.Attach(s.t, v.n, eps[0], eps[1]); err != nil {
			return s, err
		}
	case v.cfg.iptables():
		if err := b.ipt.Load(ctx, s.t.router, b.rulesets[v]); err != nil {
			return s, err
		}
		n, err := b.ipt.ForwardRules(ctx, s.t.router)
		if err != nil {
			return s, err
		}
		if n != v.n+1 {
			return s, fmt.Errorf("FORWARD chain has %d rules, want %d plus the conntrack rule", n, v.n)
		}
	}
	if s.echo, err = startEchoServer(s.t.server, echoPort, deniedPort); err != nil {
		return s, err
	}
	if b.o.hasM(measureThroughput) {
		if s.iperf, err = startIperfServer(b.iperf, s.t.server); err != nil {
			return s, err
		}
	}
	return s, nil
}

// check requires the allowed port to answer and the denied one not to,
// except without policy, where its answer proves the server listens there.
func (b *bench) check(s *setup) error {
	if err := echoOnce(s.t.client, netip.AddrPortFrom(s.t.serverAddr, echoPort), ioTimeout); err != nil {
		return fmt.Errorf("allowed traffic does not pass: %w", err)
	}
	err := echoOnce(s.t.client, netip.AddrPortFrom(s.t.serverAddr, deniedPort), 500*time.Millisecond)
	switch {
	case s.v.cfg == cfgPlain && err != nil:
		return fmt.Errorf("port %d does not answer without policy: %w", deniedPort, err)
	case s.v.cfg != cfgPlain && err == nil:
		return fmt.Errorf("port %d answered although no policy allows it: enforcement is off", deniedPort)
	}
	return nil
}

// tearDown stops s's servers, detaches Rampart (requiring that it
// forwarded packets at both endpoints) and releases the namespaces. It is
// idempotent.
func (b *bench) tearDown(s *setup) error {
	if s == nil || s.done {
		return nil
	}
	s.done = true
	if s.iperf != nil {
		s.iperf.Stop()
	}
	if s.echo != nil {
		s.echo.Stop()
	}
	var errs []error
	if s.att != nil {
		ec, err := b.rp.Detach(s.att)
		if err != nil {
			errs = append(errs, fmt.Errorf("detach datapath: %w", err))
		} else if ec.Forwarded[0] == 0 || ec.Forwarded[1] == 0 {
			errs = append(errs, fmt.Errorf("datapath forwarded %d packets at the client, %d at the server: not on the path", ec.Forwarded[0], ec.Forwarded[1]))
		} else if b.o.localRedirect {
			// Delivered locally, packets to the endpoints never leave the
			// router's veths; the few that do are the router's own.
			tx, err := s.t.routerTx()
			fwd := ec.Forwarded[0] + ec.Forwarded[1]
			switch {
			case err != nil:
				errs = append(errs, err)
			case tx*10 > fwd:
				errs = append(errs, fmt.Errorf("the router's veths sent %d packets to the endpoints for %d forwarded: local delivery is not on the path", tx, fwd))
			}
		}
	}
	if s.t != nil {
		errs = append(errs, s.t.Close())
	}
	return errors.Join(errs...)
}

// measure takes measure m once on s and returns the rate, the CPU seconds
// per operation, and the part of those used by this process. For (b) with
// -bpf-stats it also returns what the programs cost meanwhile.
func (b *bench) measure(ctx context.Context, s *setup, m measure) (rate, cost, selfCost float64, _ *bpfSample, err error) {
	var before bpfSample
	var stats bool
	if s.att != nil {
		if before, stats, err = b.rp.ProgramStats(s.att); err != nil {
			return 0, 0, 0, nil, err
		}
	}
	self0 := cpuSeconds()
	var secs, cpu, ops float64
	switch m {
	case measureThroughput:
		var r iperfResult
		if r, err = runIperf(ctx, b.iperf, s.t.client, s.t.serverAddr, b.o.duration); err != nil {
			return 0, 0, 0, nil, err
		}
		rate, secs, cpu, ops = r.BitsPerSecond, r.Seconds, r.CPU, r.Bytes/1e9
	case measureRR, measureCRR:
		srv0, err := s.echo.CPU()
		if err != nil {
			return 0, 0, 0, nil, err
		}
		r, err := runClient(ctx, s.t.client, string(m), netip.AddrPortFrom(s.t.serverAddr, echoPort), b.o.duration)
		if err != nil {
			return 0, 0, 0, nil, err
		}
		srv1, err := s.echo.CPU()
		if err != nil {
			return 0, 0, 0, nil, err
		}
		rate, secs, cpu, ops = r.rate(), r.Seconds, r.CPU+srv1-srv0, float64(r.Ops)
	}
	self := cpuSeconds() - self0
	cost, selfCost = (cpu+self)/ops, self/ops
	if !stats {
		return rate, cost, selfCost, nil, nil
	}
	after, _, err := b.rp.ProgramStats(s.att)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	bs := after.sub(before)
	bs.Seconds = secs
	if m != measureThroughput {
		bs.Ops = int64(ops)
	}
	return rate, cost, selfCost, &bs, nil
}

// progCostReps is how many times the program cost is measured per N.
const progCostReps = 5

// programCost measures each packet path through the programs at every N,
// interleaving the sizes like the rounds do.
func (b *bench) programCost(ctx context.Context, rep *report) error {
	cases := progCases()
	for _, c := range cases {
		rep.progCaseNames = append(rep.progCaseNames, c.name)
		rep.progCost[c.name] = make(map[int][]float64)
	}
	for range progCostReps {
		for _, n := range b.o.ns {
			if err := ctx.Err(); err != nil {
				return err
			}
			per, err := b.rp.ProgramCost(n, b.o.progRepeat)
			if err != nil {
				return fmt.Errorf("N=%d: %w", n, err)
			}
			for i, c := range cases {
				rep.progCost[c.name][n] = append(rep.progCost[c.name][n], float64(per[i].Nanoseconds()))
			}
		}
	}
	return nil
}

// echoOnce connects from ns to addr, sends a byte and waits for the echo.
func echoOnce(ns netns.NsHandle, addr netip.AddrPort, timeout time.Duration) error {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr.String(), timeout)
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{'p'}); err != nil {
		return err
	}
	_, err = io.ReadFull(c, make([]byte, 1))
	return err
}
