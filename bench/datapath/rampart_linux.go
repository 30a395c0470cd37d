package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/datapath"
)

// pinPrefix names the bench's bpffs directories: pinPrefix + pid.
const pinPrefix = "rampart-bench-"

// rampart is configuration (b): the datapath with its maps pinned under
// a directory of this process, a flow reader draining events as the agent
// would, and per-block attach and detach.
type rampart struct {
	d *datapath.Datapath
	// policies holds the generated rows per policy size: the client's
	// egress and the server's ingress.
	policies map[int][2][]datapath.PolicyEntry

	reader *datapath.FlowReader
	events atomic.Uint64
	wg     sync.WaitGroup

	// progStats turns on per-program run time collection for the attached
	// programs (-bpf-stats).
	progStats bool
	// cfg is the datapath configuration of the run: its flow event level
	// and whether local delivery is on (-local-redirect).
	cfg datapath.Config

	totals rampartTotals
}

// rampartTotals sums what the datapath counted over all blocks.
type rampartTotals struct {
	Forwarded, Dropped uint64
	// Drops counts dropped packets by side, direction and reason.
	Drops  map[string]uint64
	Events uint64
	datapath.Stats
}

// removeStalePins deletes bench pin directories of processes that no
// longer exist, left behind by a run that was killed.
func removeStalePins() []string {
	dirs, _ := filepath.Glob(filepath.Join(datapath.BPFFSRoot, pinPrefix+"*"))
	var removed []string
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), pinPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if processGone(pid) && os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// processGone reports whether pid has exited: it does not exist, or it is
// a zombie that its parent has not reaped yet.
func processGone(pid int) bool {
	if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// openRampart opens a fresh datapath pinned at pinDir, fills the ipcache
// with the endpoints of every b topology (one per size in ns) and every
// filler peer of the largest policy, and generates the policies of every
// size in ns.
func openRampart(pinDir string, ns []int, cfg datapath.Config, progStats bool) (r *rampart, err error) {
	d, err := datapath.Open(datapath.Options{PinDir: pinDir})
	if err != nil {
		return nil, err
	}
	r = &rampart{d: d, policies: make(map[int][2][]datapath.PolicyEntry), progStats: progStats, cfg: cfg}
	r.totals.Drops = make(map[string]uint64)
	defer func() {
		if err != nil {
			r.Close()
			r = nil
		}
	}()
	maxN := 0
	for _, n := range ns {
		egress, err := policyRows(clientEP, datapath.Egress, serverID, n)
		if err != nil {
			return nil, err
		}
		ingress, err := policyRows(serverEP, datapath.Ingress, clientID, n)
		if err != nil {
			return nil, err
		}
		r.policies[n] = [2][]datapath.PolicyEntry{egress, ingress}
		maxN = max(maxN, n)
	}
	if err := d.SetConfig(cfg); err != nil {
		return nil, err
	}
	// The ipcache is the same for every N, as in a cluster where it holds
	// every pod whatever the policies say.
	if err := d.SetIdentities(ipcacheRows(maxN, len(ns))); err != nil {
		return nil, err
	}
	if r.reader, err = d.NewFlowReader(); err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			if _, err := r.reader.Read(); err != nil {
				return // closed, or broken: either way nothing more to drain
			}
			r.events.Add(1)
		}
	}()
	return r, nil
}

// attachment is one client and server endpoint pair of a (b) variant,
// attached to its topology's router-side veths.
type attachment struct {
	client, server datapath.EndpointID
	// progs are the attached programs, held for run time statistics.
	progs []*ebpf.Program
}

// withEndpoint returns rows re-keyed for endpoint ep.
func withEndpoint(rows []datapath.PolicyEntry, ep datapath.EndpointID) []datapath.PolicyEntry {
	out := make([]datapath.PolicyEntry, len(rows))
	for i, e := range rows {
		e.Key.Endpoint = ep
		out[i] = e
	}
	return out
}

// Attach configures endpoints client and server with every direction
// enforced (default deny) and what local delivery to them needs (their
// addresses and MACs), writes n rows for the client's egress and n for
// the server's ingress, and attaches the programs to t's router-side
// veths. Each variant uses endpoint ids and addresses of its own, so that
// several topologies can be attached at once and share the maps like the
// endpoints of one node do.
func (r *rampart) Attach(t *topology, n int, client, server datapath.EndpointID) (a *attachment, err error) {
	pol, ok := r.policies[n]
	if !ok {
		return nil, fmt.Errorf("no policy generated for N=%d", n)
	}
	a = &attachment{client: client, server: server}
	defer func() {
		if err != nil {
			r.Detach(a)
			a = nil
		}
	}()
	for _, ep := range []struct {
		id    datapath.EndpointID
		ident datapath.Identity
		addr  netip.Addr
		veth  wired
		rows  []datapath.PolicyEntry
	}{
		{client, clientID, t.clientAddr, t.clientVeth, withEndpoint(pol[0], client)},
		{server, serverID, t.serverAddr, t.serverVeth, withEndpoint(pol[1], server)},
	} {
		ifidx := ep.veth.ifindex
		cfg := datapath.EndpointConfig{Identity: ep.ident, IfIndex: ifidx, IngressEnforced: true, EgressEnforced: true,
			Addrs: []netip.Addr{ep.addr}, MAC: ep.veth.podMAC, HostMAC: ep.veth.hostMAC}
		if err := r.d.SetEndpoint(ep.id, cfg); err != nil {
			return nil, err
		}
		if err := r.d.SyncPolicy(ep.id, ep.rows); err != nil {
			return nil, err
		}
		got, err := r.d.PolicyEntries(ep.id)
		if err != nil {
			return nil, err
		}
		if len(got) != n {
			return nil, fmt.Errorf("endpoint %d has %d policy rows, want %d", ep.id, len(got), n)
		}
		// The veth lives in the router namespace; TCX resolves the
		// ifindex in the namespace of the attaching thread.
		if err := inNetns(t.router, func() error { return r.d.Attach(ep.id, ifidx) }); err != nil {
			return nil, err
		}
		if r.progStats {
			progs, err := r.attachedPrograms(ep.id)
			a.progs = append(a.progs, progs...)
			if err != nil {
				return nil, err
			}
		}
	}
	return a, nil
}

// attachedPrograms finds endpoint ep's attached programs through their
// pinned links (PinDir/links/<id>/<program>, see docs/datapath.md) so that
// their run time can be read.
func (r *rampart) attachedPrograms(ep datapath.EndpointID) ([]*ebpf.Program, error) {
	var progs []*ebpf.Program
	for _, name := range []string{"from_endpoint", "to_endpoint"} {
		pin := filepath.Join(r.d.PinDir(), "links", strconv.Itoa(int(ep)), name)
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			return progs, fmt.Errorf("program stats: %w", err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return progs, fmt.Errorf("program stats: %s: %w", pin, err)
		}
		p, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			return progs, fmt.Errorf("program stats: %s: %w", pin, err)
		}
		progs = append(progs, p)
	}
	return progs, nil
}

// ProgramStats sums run time and runs of a's programs since they were
// loaded; ok is false unless -bpf-stats is on.
func (r *rampart) ProgramStats(a *attachment) (st bpfSample, ok bool, err error) {
	if len(a.progs) == 0 {
		return st, false, nil
	}
	for _, p := range a.progs {
		ps, err := p.Stats()
		if err != nil {
			return st, false, fmt.Errorf("program stats: %w", err)
		}
		st.Runtime += ps.Runtime
		st.Runs += ps.RunCount
	}
	return st, true, nil
}

// endpointCounters is what the datapath counted for one attachment.
type endpointCounters struct {
	// Forwarded is per endpoint: client, server.
	Forwarded [2]uint64
	Dropped   uint64
}

// Detach reads a's counters, then deletes both endpoints: links, policy
// rows, conntrack entries and counters.
func (r *rampart) Detach(a *attachment) (endpointCounters, error) {
	var ec endpointCounters
	cs, cerr := r.d.Counters()
	for _, c := range cs {
		if c.Endpoint != a.client && c.Endpoint != a.server {
			continue
		}
		switch c.Verdict {
		case datapath.FlowForwarded:
			if c.Endpoint == a.client {
				ec.Forwarded[0] += c.Packets
			} else {
				ec.Forwarded[1] += c.Packets
			}
		case datapath.FlowDropped:
			ec.Dropped += c.Packets
			side := "client"
			if c.Endpoint == a.server {
				side = "server"
			}
			r.totals.Drops[fmt.Sprintf("%s %v: %v", side, c.Direction, c.Reason)] += c.Packets
		}
	}
	for _, p := range a.progs {
		p.Close()
	}
	a.progs = nil
	r.totals.Forwarded += ec.Forwarded[0] + ec.Forwarded[1]
	r.totals.Dropped += ec.Dropped
	err := errors.Join(cerr, r.d.DeleteEndpoint(a.client), r.d.DeleteEndpoint(a.server))
	return ec, err
}

// Close stops the flow reader and removes every pin and the pin
// directory.
func (r *rampart) Close() error {
	var errs []error
	if st, err := r.d.Stats(); err == nil {
		r.totals.Stats = st
	}
	if r.reader != nil {
		errs = append(errs, r.reader.Close())
		r.wg.Wait()
	}
	r.totals.Events = r.events.Load()
	errs = append(errs, r.d.Remove())
	return errors.Join(errs...)
}
