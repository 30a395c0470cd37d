package endpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Restore checks every recorded endpoint against the kernel after the
// Manager (or the whole agent) restarted, and adopts the processes that
// still run. It never re-creates or deletes anything: it re-applies the
// masquerade table, forwarding settings and host routes where they are
// missing (all idempotent), and marks an endpoint Broken when its
// namespace or veth is gone or was replaced, or Create did not finish.
// Broken endpoints keep their record so Delete can remove what is left.
//
// A process counts as the recorded one only if boot id, PID and start
// time all match; otherwise it ended while no Manager watched (its exit
// code is then unknown). Allocations that no record owns (a crash between
// allocating and recording) are released; kernel objects with the
// instance's prefix that no record owns are reported as orphans and left
// for Cleanup.
func (m *Manager) Restore(ctx context.Context) (RestoreReport, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return RestoreReport{}, ErrClosed
	}
	entries := make([]*entry, 0, len(m.eps))
	for _, e := range m.eps {
		entries = append(entries, e)
	}
	m.natReady = false // re-check the table once
	m.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].ep.ID < entries[j].ep.ID })

	var rep RestoreReport
	if len(entries) > 0 {
		if err := m.ensureNAT(); err != nil {
			return rep, err
		}
		m.mu.Lock()
		err := m.ensureHostLocked()
		m.mu.Unlock()
		if err != nil {
			return rep, err
		}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		e.op.Lock()
		err := m.restoreOne(e, &rep)
		e.op.Unlock()
		if err != nil {
			return rep, err
		}
	}

	m.mu.Lock()
	owned := map[uint16]bool{}
	knownNS := map[string]bool{}
	knownLinks := map[string]bool{}
	for _, e := range m.eps {
		owned[e.ep.ID] = true
		knownNS[e.ep.NetNSPath] = true
		knownLinks[e.ep.HostIfName] = true
	}
	for _, al := range m.ipam.Allocations() {
		if owned[al.ID] {
			continue
		}
		if err := m.ipam.Release(al.ID); err != nil {
			m.mu.Unlock()
			return rep, err
		}
		rep.Released = append(rep.Released, al)
		m.log.Warn("released an allocation no endpoint owns", "id", al.ID, "owner", al.Owner, "ipv4", al.IPv4, "ipv6", al.IPv6)
	}
	m.mu.Unlock()

	paths, err := listNetNS(m.cfg.NetNSDir, netnsPrefix(m.cfg.Instance))
	if err != nil {
		return rep, err
	}
	for _, p := range paths {
		if !knownNS[p] {
			rep.Orphans = append(rep.Orphans, p)
		}
	}
	links, err := ownedLinks(m.cfg.Instance)
	if err != nil {
		return rep, err
	}
	for _, l := range links {
		if !knownLinks[l.Attrs().Name] {
			rep.Orphans = append(rep.Orphans, l.Attrs().Name)
		}
	}
	rep.Endpoints = m.List()
	for _, b := range rep.Broken {
		m.log.Warn("endpoint is broken", "endpoint", b.Key, "problem", b.Problem)
	}
	return rep, nil
}

// restoreOne checks e and adopts its process. The caller holds e.op.
func (m *Manager) restoreOne(e *entry, rep *RestoreReport) error {
	m.mu.Lock()
	ep := e.ep
	_, allocated := m.ipam.Get(ep.ID)
	m.mu.Unlock()

	problem, mac := "", ""
	switch {
	case ep.State == StateCreating:
		problem = "creation did not finish"
	case !allocated:
		problem = fmt.Sprintf("id %d has no address allocation in %s", ep.ID, ipamFile)
	default:
		l, podMAC, err := checkNetwork(m.cfg.Instance, &ep)
		mac = podMAC
		if err != nil {
			problem = err.Error()
			break
		}
		for _, s := range hostLinkSysctls(l.Attrs().Name, ep.IPv4.IsValid(), ep.IPv6.IsValid()) {
			if err := writeSysctl(s[0], s[1]); err != nil {
				problem = err.Error()
			}
		}
		if err := ensureHostRoutes(l.Attrs().Index, &ep); err != nil {
			problem = err.Error()
		}
	}

	p, err := m.procOf(e)
	if err != nil {
		return fmt.Errorf("%s: %w", ep.Key(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	alive := p != nil && !p.exited()
	if pr := e.ep.Process; pr != nil && pr.Exited == nil && p == nil {
		now := time.Now().UTC()
		c := *pr
		c.Exited = &now
		e.ep.Process = &c
		rep.Exited = append(rep.Exited, ep.Key())
		m.log.Info("process ended while unwatched", "endpoint", ep.Key(), "pid", pr.PID)
	}
	if alive {
		rep.Running = append(rep.Running, ep.Key())
	}
	if mac != "" {
		e.ep.MAC = mac // recorded by versions before the field, or changed
	}
	switch {
	case problem != "":
		e.ep.State, e.ep.Problem = StateBroken, problem
		rep.Broken = append(rep.Broken, BrokenEndpoint{Key: ep.Key(), Problem: problem})
	case alive:
		e.ep.State, e.ep.Problem = StateRunning, ""
	case e.ep.Process != nil:
		e.ep.State, e.ep.Problem = StateExited, ""
	default:
		e.ep.State, e.ep.Problem = StateReady, ""
	}
	return m.saveLocked(e)
}

// Cleanup removes everything of this instance: every endpoint's
// processes, namespace and veth, then any namespace or veth that carries
// the instance's prefix without a record, the nftables table, the
// forwarding settings it turned on (unless other Rampart endpoints
// remain) and its state files. It works from the kernel's view as well as
// the records, so it also cleans up after a lost state directory. On
// success the Manager is closed; on error it stays open so Cleanup can be
// retried.
func (m *Manager) Cleanup(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	entries := make([]*entry, 0, len(m.eps))
	for _, e := range m.eps {
		entries = append(entries, e)
	}
	m.mu.Unlock()

	var errs []error
	for _, e := range entries {
		e.op.Lock()
		err := m.stopLocked(ctx, e)
		if err == nil {
			err = m.teardown(e, false)
		}
		e.op.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.ep.Key(), err))
		}
	}
	paths, err := listNetNS(m.cfg.NetNSDir, netnsPrefix(m.cfg.Instance))
	if err != nil {
		errs = append(errs, err)
	}
	for _, p := range paths {
		if ns, err := statNS(p); err == nil && isNetNS(p) {
			if err := killNetNS(ns, 5*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				continue
			}
		}
		if err := deleteNetNS(p); err != nil {
			errs = append(errs, err)
		}
	}
	links, err := ownedLinks(m.cfg.Instance)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range links {
		if err := deleteLink(l.Attrs().Name, l.Attrs().Index); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteNAT(m.cfg.Instance); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup of instance %s: %w", m.cfg.Instance, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.restoreHostLocked(); err != nil {
		m.log.Warn("restore forwarding settings", "err", err)
	}
	dir := m.cfg.StateDir
	for _, p := range []string{filepath.Join(dir, endpointsDir), filepath.Join(dir, logsDir)} {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range []string{filepath.Join(dir, ipamFile), filepath.Join(dir, hostFile), filepath.Join(dir, lockFile)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	m.eps = map[Key]*entry{}
	m.closeLocked()
	os.Remove(dir) // only if empty: the directory may hold others' files
	m.log.Info("instance cleaned up")
	return errors.Join(errs...)
}
