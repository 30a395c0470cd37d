package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampartsec/rampart/bench/internal/host"
	"github.com/rampartsec/rampart/internal/ca"
)

// Loopback addresses of the workloads. Each configuration has its own
// client and server address, so all run side by side with fixed HBONE and
// application ports; the application listens on every server address and
// on directAddr. Ports are picked free at start.
var (
	directAddr = netip.MustParseAddr("127.0.0.10")
	clientAddr = map[config]netip.Addr{
		cfgL4: netip.MustParseAddr("127.0.0.11"), cfgL7: netip.MustParseAddr("127.0.0.21"), cfgNginx: netip.MustParseAddr("127.0.0.31"),
		cfgNginxL4: netip.MustParseAddr("127.0.0.41"), cfgNginxTCP: netip.MustParseAddr("127.0.0.51"),
	}
	serverAddr = map[config]netip.Addr{
		cfgL4: netip.MustParseAddr("127.0.0.12"), cfgL7: netip.MustParseAddr("127.0.0.22"), cfgNginx: netip.MustParseAddr("127.0.0.32"),
		cfgNginxL4: netip.MustParseAddr("127.0.0.42"), cfgNginxTCP: netip.MustParseAddr("127.0.0.52"),
	}
)

// setup is one configuration, running.
type setup struct {
	cfg config
	t   target
	// sides are the client-side and server-side proxies; none for (a).
	sides []proc
}

// bench is the state of one run.
type bench struct {
	o     options
	auth  *ca.Authority
	caDir string
	dir   string
	nginx string
	// streamModule is the path of nginx's stream module, for (e) and (f).
	streamModule string
	// nginxPKI is written once, for the first nginx configuration
	// started, and shared by all: (d) and (e) present the same
	// certificates.
	nginxPKI *nginxPKI
	app      *goChild
	// procs are stopped in reverse order at the end.
	procs []proc
}

// run starts the application and every configuration, then, round after
// round, measures each configuration at both loads, and returns the
// report. It stops every process it started before returning, also when
// ctx is cancelled.
func run(ctx context.Context, o options) (_ *report, err error) {
	started := time.Now()
	rep := newReport(o)
	rep.env = environment{kernel: host.KernelRelease(), goVersion: runtime.Version(), cpus: runtime.NumCPU()}
	b := &bench{o: o}
	if o.hasFunc(config.nginx) {
		if b.nginx, rep.env.nginx, err = nginxVersion(o.nginx); err != nil {
			return nil, err
		}
	}
	if o.hasFunc(config.stream) {
		if b.streamModule, err = nginxStreamModule(nginxModulesDir); err != nil {
			return nil, err
		}
		rep.env.streamModule = b.streamModule
	}
	if b.dir, err = os.MkdirTemp("", "rampart-bench-mesh-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.dir)
	defer func() {
		for _, p := range slices.Backward(b.procs) {
			p.stop()
		}
	}()
	b.caDir = filepath.Join(b.dir, "ca")
	if b.auth, err = ca.Open(b.caDir, ca.Options{}); err != nil {
		return nil, fmt.Errorf("open CA: %w", err)
	}

	setups, err := b.start(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range setups {
		if err := check(ctx, s); err != nil {
			return nil, fmt.Errorf("check %s: %w", s.cfg, err)
		}
	}

	rep.env.loadBefore = host.LoadAverage()
	for round := range o.reps {
		for _, l := range allLoads {
			var parts []string
			// Rotating the order spreads slow drift of a shared machine
			// over all configurations instead of favouring the first.
			for i := range setups {
				s := setups[(i+round)%len(setups)]
				if err := host.Sleep(ctx, o.settle); err != nil {
					return nil, err
				}
				smp, err := b.measure(ctx, s, l)
				if err != nil {
					return nil, fmt.Errorf("round %d, %s, %s load: %w", round+1, s.cfg, l, err)
				}
				rep.samples[s.cfg][l] = append(rep.samples[s.cfg][l], smp)
				parts = append(parts, describeSample(s.cfg, smp))
			}
			fmt.Fprintf(o.progress, "round %d/%d %-5s %s\n", round+1, o.reps, l, strings.Join(parts, ", "))
		}
	}
	rep.env.loadAfter = host.LoadAverage()

	if err := b.countNotes(rep, setups); err != nil {
		return nil, err
	}
	rep.env.elapsed = time.Since(started)
	return rep, nil
}

// start starts the application and the proxies of every configuration.
func (b *bench) start(ctx context.Context) ([]*setup, error) {
	o := b.o
	appAddrs := []netip.Addr{directAddr}
	for _, c := range o.configs {
		if c.proxied() {
			appAddrs = append(appAddrs, serverAddr[c])
		}
	}
	appPort, err := freePort(appAddrs...)
	if err != nil {
		return nil, err
	}
	var listen []string
	for _, a := range appAddrs {
		listen = append(listen, netip.AddrPortFrom(a, appPort).String())
	}
	if b.app, err = startGoChild(ctx, "app", []string{appCmd, "-listen", strings.Join(listen, ","), "-body", strconv.Itoa(o.body)}, nil, nil, "", ""); err != nil {
		return nil, err
	}
	b.procs = append(b.procs, b.app)

	var setups []*setup
	for _, c := range o.configs {
		s := &setup{cfg: c, t: target{header: benchHeader(), body: o.body}}
		var front netip.AddrPort
		switch c {
		case cfgDirect:
			front = netip.AddrPortFrom(directAddr, appPort)
		case cfgL4, cfgL7:
			if front, err = b.startRampart(ctx, s, appPort); err != nil {
				return nil, err
			}
		case cfgNginx, cfgNginxL4, cfgNginxTCP:
			if front, err = b.startNginx(ctx, s, appPort); err != nil {
				return nil, err
			}
		}
		s.t.url = "http://" + front.String() + benchPath
		setups = append(setups, s)
	}
	return setups, nil
}

// startRampart starts the server-side and the client-side proxy of (b) or
// (c) and returns the client side's front address.
func (b *bench) startRampart(ctx context.Context, s *setup, appPort uint16) (netip.AddrPort, error) {
	cip, sip := clientAddr[s.cfg], serverAddr[s.cfg]
	hbone, err := freePort(cip, sip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	lport, err := freePort(cip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	front := netip.AddrPortFrom(cip, lport)
	policy := policyNone
	if s.cfg == cfgL7 {
		policy = policyRules
	}
	common := []string{proxyCmd, "-hbone", strconv.Itoa(int(hbone)), "-client", cip.String(), "-server", sip.String()}
	env := proxyEnv(b.o.proxyProcs)
	prof := func(side string) []string {
		if b.o.profile == "" {
			return nil
		}
		return []string{"-cpuprofile", filepath.Join(b.o.profile, string(s.cfg)+"-"+side+".pprof")}
	}
	server, err := startGoChild(ctx, string(s.cfg)+" server", slices.Concat(common, []string{"-role", serverName, "-policy", policy}, prof(serverName)), env, b.auth, benchNamespace, serverName)
	if err != nil {
		return front, err
	}
	b.procs = append(b.procs, server)
	client, err := startGoChild(ctx, string(s.cfg)+" client", slices.Concat(common, []string{"-role", clientName, "-listen", front.String(), "-app", strconv.Itoa(int(appPort))}, prof(clientName)), env, b.auth, benchNamespace, clientName)
	if err != nil {
		return front, err
	}
	b.procs = append(b.procs, client)
	s.sides = []proc{client, server}
	// A GOMAXPROCS the runtime ignored would make the report describe a
	// run that did not happen.
	if want := b.o.proxyProcs; want > 0 {
		for _, c := range []*goChild{client, server} {
			st, err := c.stats()
			if err != nil {
				return front, err
			}
			if st.GOMAXPROCS != want {
				return front, fmt.Errorf("%s runs with GOMAXPROCS %d, want %d", c.label(), st.GOMAXPROCS, want)
			}
		}
	}
	return front, nil
}

// startNginx starts the server-side and the client-side nginx of (d), (e)
// or (f) and returns the client side's front address. Each configuration
// has a prefix directory of its own; the certificates are shared.
func (b *bench) startNginx(ctx context.Context, s *setup, appPort uint16) (netip.AddrPort, error) {
	cip, sip := clientAddr[s.cfg], serverAddr[s.cfg]
	if b.nginxPKI == nil {
		pkiDir := filepath.Join(b.dir, "nginx")
		if err := os.MkdirAll(pkiDir, 0o755); err != nil {
			return netip.AddrPort{}, err
		}
		pki, err := writeNginxPKI(b.auth, b.caDir, pkiDir)
		if err != nil {
			return netip.AddrPort{}, err
		}
		b.nginxPKI = &pki
	}
	pki := *b.nginxPKI
	dir := filepath.Join(b.dir, "nginx", string(s.cfg))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return netip.AddrPort{}, err
	}
	sport, err := freePort(sip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	cport, err := freePort(cip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	serverSide := nginxSide{cfg: s.cfg, name: serverName, listen: netip.AddrPortFrom(sip, sport), upstream: netip.AddrPortFrom(sip, appPort), pki: pki, streamModule: b.streamModule}
	clientSide := nginxSide{cfg: s.cfg, name: clientName, listen: netip.AddrPortFrom(cip, cport), upstream: serverSide.listen, pki: pki, streamModule: b.streamModule}
	server, err := startNginx(ctx, b.nginx, dir, serverSide)
	if err != nil {
		return clientSide.listen, err
	}
	b.procs = append(b.procs, server)
	client, err := startNginx(ctx, b.nginx, dir, clientSide)
	if err != nil {
		return clientSide.listen, err
	}
	b.procs = append(b.procs, client)
	s.sides = []proc{client, server}
	return clientSide.listen, nil
}

// check sends the benchmark's request through s, which must succeed, and
// one to deniedPath, which (c)'s policy must refuse with 403 and every
// other configuration pass to the application.
func check(ctx context.Context, s *setup) error {
	c := newClient(1)
	defer c.CloseIdleConnections()
	if err := do(ctx, c, s.t); err != nil {
		return fmt.Errorf("GET %s: %w", s.t.url, err)
	}
	denied := s.t
	denied.url = strings.TrimSuffix(s.t.url, benchPath) + deniedPath
	err := do(ctx, c, denied)
	if s.cfg == cfgL7 {
		if err == nil || !strings.Contains(err.Error(), "status 403") {
			return fmt.Errorf("GET %s: %v, want status 403 from the DENY policy", denied.url, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", denied.url, err)
	}
	return nil
}

// measure runs load l through s: a warm-up, then the measurement between
// two readings of the proxies' CPU time, sampling their memory.
func (b *bench) measure(ctx context.Context, s *setup, l load) (sample, error) {
	o := b.o
	c := newClient(o.conns)
	defer c.CloseIdleConnections()
	if o.warmup > 0 {
		if _, err := runLoad(ctx, c, s.t, l, &o, o.warmup); err != nil {
			return sample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	cpu0, err := s.cpu()
	if err != nil {
		return sample{}, err
	}
	t0 := time.Now()
	stopMem := s.sampleMemory(250 * time.Millisecond)
	p, err := runLoad(ctx, c, s.t, l, &o, o.duration)
	mem, memErr := stopMem()
	if err != nil {
		return sample{}, err
	}
	cpu1, err := s.cpu()
	if err != nil {
		return sample{}, err
	}
	wall := time.Since(t0).Seconds()
	if memErr != nil {
		return sample{}, memErr
	}
	smp := sample{
		rate: p.rate(), ok: p.ok, errs: p.errs, wall: wall, mem: mem,
		p50: percentile(p.lat, 0.50), p90: percentile(p.lat, 0.90), p99: percentile(p.lat, 0.99), pmax: percentile(p.lat, 1),
	}
	for i := range s.sides {
		smp.cpu[i] = (cpu1[i] - cpu0[i]).Seconds()
	}
	return smp, nil
}

// cpu returns each side's CPU time so far.
func (s *setup) cpu() ([2]time.Duration, error) {
	var out [2]time.Duration
	for i, p := range s.sides {
		for _, pid := range p.pids() {
			t, err := cpuTime(pid)
			if err != nil {
				return out, fmt.Errorf("%s: %w", p.label(), err)
			}
			out[i] += t
		}
	}
	return out, nil
}

// sampleMemory samples each side's memory (groupMemory) every interval,
// and once more at the end, until the returned function is called, which
// returns the largest.
func (s *setup) sampleMemory(interval time.Duration) func() ([2]float64, error) {
	var (
		peak  [2]float64
		first error
	)
	read := func() {
		for i, p := range s.sides {
			m, err := groupMemory(p.pids())
			if err != nil {
				first = cmpErr(first, fmt.Errorf("%s: %w", p.label(), err))
				return
			}
			peak[i] = max(peak[i], m)
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		read()
		for {
			select {
			case <-stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() ([2]float64, error) {
		close(stop)
		<-done
		return peak, first
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// countNotes checks, with the children's counters, that the requests went
// where they should, and notes the counts.
func (b *bench) countNotes(rep *report, setups []*setup) error {
	st, err := b.app.stats()
	if err != nil {
		return err
	}
	rep.notes = append(rep.notes, fmt.Sprintf("The application served %d requests.", st.Requests))
	for _, s := range setups {
		if s.cfg != cfgL4 && s.cfg != cfgL7 {
			continue
		}
		server, ok := s.sides[sideServer].(*goChild)
		if !ok {
			continue
		}
		st, err := server.stats()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s server proxy: %d connection records, %d HTTP request records", s.cfg, st.Connections, st.HTTPRequests)
		if s.cfg == cfgL7 {
			// Every measured request, and the check's allowed one,
			// must have been authorized per request by the last rule's
			// policy; only the check's denied request was refused.
			allowed := st.ByPolicy["AuthorizationPolicy/bench/allow-api"]
			line += fmt.Sprintf(" (%d allowed by bench/allow-api, %d denied)", allowed, st.Denied)
			if allowed == 0 || st.Denied != 1 || allowed+st.Denied != st.HTTPRequests {
				return fmt.Errorf("c: the server proxy authorized %d requests by bench/allow-api and denied %d of %d; want all but the check's one allowed", allowed, st.Denied, st.HTTPRequests)
			}
		} else if st.HTTPRequests != 0 {
			return fmt.Errorf("b: the server proxy parsed %d HTTP requests; L4 must not", st.HTTPRequests)
		}
		if st.Errors > 0 {
			line += fmt.Sprintf("; %d records with an error", st.Errors)
		}
		rep.notes = append(rep.notes, line+".")
	}
	return nil
}

// freePort returns a TCP port free on every address of addrs at the time
// of the call.
func freePort(addrs ...netip.Addr) (uint16, error) {
	var last error
	for range 50 {
		l0, err := net.Listen("tcp", netip.AddrPortFrom(addrs[0], 0).String())
		if err != nil {
			return 0, err
		}
		port := uint16(l0.Addr().(*net.TCPAddr).Port)
		ls := []net.Listener{l0}
		ok := true
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", netip.AddrPortFrom(a, port).String())
			if err != nil {
				ok, last = false, err
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on all of %v: %w", addrs, last)
}
