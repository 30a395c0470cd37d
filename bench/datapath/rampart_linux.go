package main

import (
	"errors"
	"fmt"
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
	// programs (-bpf-stats); progs holds them while attached.
	progStats bool
	progs     []*ebpf.Program

	totals rampartTotals
}

// rampartTotals sums what the datapath counted over all blocks.
type rampartTotals struct {
	Forwarded, Dropped uint64
	// Drops counts dropped packets by endpoint, direction and reason.
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
// with the endpoints and every filler peer of the largest policy, and
// generates the policies of every size in ns.
func openRampart(pinDir string, ns []int, events datapath.EventLevel, progStats bool) (r *rampart, err error) {
	d, err := datapath.Open(datapath.Options{PinDir: pinDir})
	if err != nil {
		return nil, err
	}
	r = &rampart{d: d, policies: make(map[int][2][]datapath.PolicyEntry), progStats: progStats}
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
	if err := d.SetConfig(datapath.Config{Events: events}); err != nil {
		return nil, err
	}
	// The ipcache is the same for every N, as in a cluster where it holds
	// every pod whatever the policies say.
	if err := d.SetIdentities(ipcacheRows(maxN)); err != nil {
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

// Attach configures both endpoints with every direction enforced (default
// deny), writes n rows for the client's egress and n for the server's
// ingress, and attaches the programs to the router-side veths.
func (r *rampart) Attach(t *topology, n int) error {
	pol, ok := r.policies[n]
	if !ok {
		return fmt.Errorf("no policy generated for N=%d", n)
	}
	for _, ep := range []struct {
		id    datapath.EndpointID
		ident datapath.Identity
		ifidx int
		rows  []datapath.PolicyEntry
	}{
		{clientEP, clientID, t.clientVeth, pol[0]},
		{serverEP, serverID, t.serverVeth, pol[1]},
	} {
		cfg := datapath.EndpointConfig{Identity: ep.ident, IfIndex: ep.ifidx, IngressEnforced: true, EgressEnforced: true}
		if err := r.d.SetEndpoint(ep.id, cfg); err != nil {
			return err
		}
		if err := r.d.SyncPolicy(ep.id, ep.rows); err != nil {
			return err
		}
		got, err := r.d.PolicyEntries(ep.id)
		if err != nil {
			return err
		}
		if len(got) != n {
			return fmt.Errorf("endpoint %d has %d policy rows, want %d", ep.id, len(got), n)
		}
		// The veth lives in the router namespace; TCX resolves the
		// ifindex in the namespace of the attaching thread.
		if err := inNetns(t.router, func() error { return r.d.Attach(ep.id, ep.ifidx) }); err != nil {
			return err
		}
		if r.progStats {
			if err := r.openPrograms(ep.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// openPrograms finds endpoint ep's attached programs through their pinned
// links (PinDir/links/<id>/<program>, see docs/datapath.md) so that their
// run time can be read.
func (r *rampart) openPrograms(ep datapath.EndpointID) error {
	for _, name := range []string{"from_endpoint", "to_endpoint"} {
		pin := filepath.Join(r.d.PinDir(), "links", strconv.Itoa(int(ep)), name)
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			return fmt.Errorf("program stats: %w", err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return fmt.Errorf("program stats: %s: %w", pin, err)
		}
		p, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			return fmt.Errorf("program stats: %s: %w", pin, err)
		}
		r.progs = append(r.progs, p)
	}
	return nil
}

// ProgramStats sums run time and runs of the attached programs since they
// were loaded; ok is false unless -bpf-stats is on.
func (r *rampart) ProgramStats() (st bpfSample, ok bool, err error) {
	if len(r.progs) == 0 {
		return st, false, nil
	}
	for _, p := range r.progs {
		ps, err := p.Stats()
		if err != nil {
			return st, false, fmt.Errorf("program stats: %w", err)
		}
		st.Runtime += ps.Runtime
		st.Runs += ps.RunCount
	}
	return st, true, nil
}

// blockCounters is what the datapath counted during one block.
type blockCounters struct {
	// Forwarded is per endpoint: client, server.
	Forwarded [2]uint64
	Dropped   uint64
}

// Detach reads the block's counters, then deletes both endpoints: links,
// policy rows, conntrack entries and counters, so that the next block
// starts from empty maps.
func (r *rampart) Detach() (blockCounters, error) {
	var bc blockCounters
	cs, cerr := r.d.Counters()
	for _, c := range cs {
		switch c.Verdict {
		case datapath.FlowForwarded:
			if c.Endpoint == clientEP {
				bc.Forwarded[0] += c.Packets
			} else if c.Endpoint == serverEP {
				bc.Forwarded[1] += c.Packets
			}
		case datapath.FlowDropped:
			bc.Dropped += c.Packets
			r.totals.Drops[fmt.Sprintf("endpoint %d %v: %v", c.Endpoint, c.Direction, c.Reason)] += c.Packets
		}
	}
	for _, p := range r.progs {
		p.Close()
	}
	r.progs = nil
	r.totals.Forwarded += bc.Forwarded[0] + bc.Forwarded[1]
	r.totals.Dropped += bc.Dropped
	err := errors.Join(cerr, r.d.DeleteEndpoint(clientEP), r.d.DeleteEndpoint(serverEP))
	return bc, err
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
