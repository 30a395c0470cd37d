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
	// bpf collects the current block's program costs per measure.
	bpf map[measure]bpfSample
}

// run measures every variant once per round and returns the report. It
// removes everything it created before returning, also when ctx is
// cancelled.
func run(ctx context.Context, o options) (_ *report, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("must run as root: it creates network namespaces, attaches eBPF programs and loads iptables rules")
	}
	variants := variantsOf(o)
	rep := newReport(o, variants)
	rep.env = environment{kernel: kernelRelease(), goVersion: runtime.Version(), cpus: runtime.NumCPU()}
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
		if b.rp, err = openRampart(pinDir, o.ns, o.events, o.bpfStats); err != nil {
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

	rep.env.loadBefore = loadAverage()
	for round := range o.reps {
		// Rotating the order spreads slow drift (other load, thermal)
		// over all configurations instead of always favouring the first.
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			b.bpf = make(map[measure]bpfSample)
			vals, err := b.block(ctx, v, round)
			if err != nil {
				return nil, fmt.Errorf("round %d, %v: %w", round+1, v, err)
			}
			var parts []string
			for _, m := range o.measures {
				rep.values[v][m] = append(rep.values[v][m], vals[m])
				if s, ok := b.bpf[m]; ok {
					rep.bpf[v][m] = append(rep.bpf[v][m], s)
				}
				parts = append(parts, fmt.Sprintf("%s %.4g", m, scale(m, vals[m])))
			}
			fmt.Fprintf(o.progress, "round %d/%d  %-12v  %s\n", round+1, o.reps, v, strings.Join(parts, "  "))
		}
	}
	if b.rp != nil && o.progRepeat > 0 {
		if err := b.programCost(ctx, rep); err != nil {
			return nil, fmt.Errorf("program cost: %w", err)
		}
	}
	rep.env.loadAfter = loadAverage()
	return rep, nil
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
			per, err := b.rp.ProgramCost(n, b.o.progRepeat, b.o.events)
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

// block sets variant v up on fresh namespaces, checks that allowed traffic
// passes and (except for a) that other traffic is dropped, takes each
// measure once and tears everything down again.
func (b *bench) block(ctx context.Context, v variant, round int) (vals map[measure]float64, err error) {
	t, err := newTopology()
	if err != nil {
		return nil, err
	}
	defer t.Close()

	switch {
	case v.cfg == cfgRampart:
		if err := b.rp.Attach(t, v.n); err != nil {
			b.rp.Detach()
			return nil, err
		}
		defer func() {
			bc, derr := b.rp.Detach()
			if derr != nil {
				err = errors.Join(err, fmt.Errorf("detach datapath: %w", derr))
			} else if err == nil && (bc.Forwarded[0] == 0 || bc.Forwarded[1] == 0) {
				err = fmt.Errorf("datapath forwarded %d packets at the client, %d at the server: not on the path", bc.Forwarded[0], bc.Forwarded[1])
			}
		}()
	case v.cfg.iptables():
		if err := b.ipt.Load(ctx, t.router, b.rulesets[v]); err != nil {
			return nil, err
		}
		if round == 0 {
			n, err := b.ipt.ForwardRules(ctx, t.router)
			if err != nil {
				return nil, err
			}
			if n != v.n+1 {
				return nil, fmt.Errorf("FORWARD chain has %d rules, want %d plus the conntrack rule", n, v.n)
			}
		}
	}

	echo, err := startEchoServer(t.server, echoPort, deniedPort)
	if err != nil {
		return nil, err
	}
	defer echo.Stop()
	if b.o.hasM(measureThroughput) {
		srv, err := startIperfServer(b.iperf, t.server)
		if err != nil {
			return nil, err
		}
		defer srv.Stop()
	}
	if err := sleep(ctx, b.o.settle); err != nil {
		return nil, err
	}

	// The allowed port must answer; the denied one must not, except
	// without policy, where answering proves the server listens there.
	if err := echoOnce(t.client, netip.AddrPortFrom(serverAddr, echoPort), ioTimeout); err != nil {
		return nil, fmt.Errorf("allowed traffic does not pass: %w", err)
	}
	err = echoOnce(t.client, netip.AddrPortFrom(serverAddr, deniedPort), 500*time.Millisecond)
	switch {
	case v.cfg == cfgPlain && err != nil:
		return nil, fmt.Errorf("port %d does not answer without policy: %w", deniedPort, err)
	case v.cfg != cfgPlain && err == nil:
		return nil, fmt.Errorf("port %d answered although no policy allows it: enforcement is off", deniedPort)
	}

	vals = make(map[measure]float64)
	for _, m := range b.o.measures {
		var before bpfSample
		if v.cfg == cfgRampart {
			if before, _, err = b.rp.ProgramStats(); err != nil {
				return nil, err
			}
		}
		var (
			x    float64
			secs float64
			ops  int64
		)
		switch m {
		case measureThroughput:
			x, secs, err = runIperf(ctx, b.iperf, t.client, serverAddr, b.o.duration)
		case measureRR, measureCRR:
			var r loadResult
			r, err = runClient(ctx, t.client, string(m), netip.AddrPortFrom(serverAddr, echoPort), b.o.duration)
			x, secs, ops = r.rate(), r.Seconds, r.Ops
		}
		if err != nil {
			return nil, err
		}
		vals[m] = x
		if v.cfg == cfgRampart {
			after, ok, err := b.rp.ProgramStats()
			if err != nil {
				return nil, err
			}
			if ok {
				s := after.sub(before)
				s.Seconds, s.Ops = secs, ops
				b.bpf[m] = s
			}
		}
	}
	return vals, nil
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

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
