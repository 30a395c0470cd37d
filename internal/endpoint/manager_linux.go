package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Manager creates, runs, restores and removes the endpoints of one
// instance. It holds an exclusive lock on its state directory from New to
// Close, so two Managers never write the same state. Its methods are safe
// for concurrent use; operations on one endpoint are serialised, those on
// different endpoints are not.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File

	natMu sync.Mutex // serialises nftables updates

	mu             sync.Mutex // guards everything below and every entry's ep and proc
	closed         bool
	ipam           *IPAM
	host           hostState
	eps            map[Key]*entry
	natReady       bool
	warnedNoUplink bool
}

type entry struct {
	op   sync.Mutex // held for the whole of a lifecycle operation
	ep   Endpoint
	proc *proc
}

// New opens the state directory and loads the endpoints recorded there.
// It does not touch the kernel: call Restore to check the endpoints and
// adopt their processes after a restart.
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, endpointsDir), filepath.Join(cfg.StateDir, logsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	lock, err := os.OpenFile(filepath.Join(cfg.StateDir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, cfg.StateDir)
		}
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{cfg: cfg, log: log.With("component", "endpoint", "instance", cfg.Instance), lock: lock, eps: map[Key]*entry{}}
	fail := func(err error) (*Manager, error) {
		lock.Close()
		return nil, err
	}
	if m.host, err = loadHostState(cfg.StateDir, cfg.Instance); err != nil {
		return fail(err)
	}
	if err := writeJSON(filepath.Join(cfg.StateDir, hostFile), m.host); err != nil {
		return fail(err)
	}
	if m.ipam, err = OpenIPAM(filepath.Join(cfg.StateDir, ipamFile), cfg.PodCIDR4, cfg.PodCIDR6); err != nil {
		return fail(err)
	}
	if v4, v6 := m.ipam.Pools(); v4 != cfg.PodCIDR4 || v6 != cfg.PodCIDR6 {
		m.log.Warn("pod CIDRs changed while endpoints use the old ones: keeping them until those endpoints are deleted; no new endpoints until then",
			"podCIDR4", v4, "podCIDR6", v6)
	}
	eps, err := loadEndpoints(cfg.StateDir)
	if err != nil {
		return fail(err)
	}
	for _, ep := range eps {
		if _, dup := m.eps[ep.Key()]; dup {
			return fail(fmt.Errorf("%s: endpoint %s recorded twice", filepath.Join(cfg.StateDir, endpointsDir), ep.Key()))
		}
		m.eps[ep.Key()] = &entry{ep: ep}
	}
	return m, nil
}

// SetLogger replaces the logger (slog.Default by default).
func (m *Manager) SetLogger(l *slog.Logger) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = l.With("component", "endpoint", "instance", m.cfg.Instance)
}

// Close releases the state directory. Endpoints and their processes keep
// running; a later Manager adopts them with Restore.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closeLocked()
	return nil
}

func (m *Manager) closeLocked() {
	m.closed = true
	for _, e := range m.eps {
		if e.proc != nil {
			e.proc.release()
		}
	}
	m.lock.Close() // drops the flock
}

// Create creates the endpoint's network: its namespace, veth pair,
// addresses, routes and masquerading. It returns with the endpoint Ready
// and no process; the caller attaches the datapath to HostIfIndex, then
// calls Start. On failure everything Create made is removed again.
func (m *Manager) Create(ctx context.Context, spec Spec) (Endpoint, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return Endpoint{}, err
	}
	if err := ctx.Err(); err != nil {
		return Endpoint{}, err
	}
	key := spec.Key()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Endpoint{}, ErrClosed
	}
	if _, ok := m.eps[key]; ok {
		m.mu.Unlock()
		return Endpoint{}, fmt.Errorf("%w: %s", ErrExists, key)
	}
	al, err := m.ipam.Allocate(key.String())
	if err != nil {
		m.mu.Unlock()
		return Endpoint{}, fmt.Errorf("create %s: %w", key, err)
	}
	e := &entry{ep: Endpoint{
		ID:         al.ID,
		Spec:       spec,
		IPv4:       al.IPv4,
		IPv6:       al.IPv6,
		NetNSPath:  filepath.Join(m.cfg.NetNSDir, NetNSName(m.cfg.Instance, key)),
		HostIfName: HostIfName(m.cfg.Instance, al.ID),
		LogPath:    logFile(m.cfg.StateDir, al.ID),
		Created:    time.Now().UTC(),
		State:      StateCreating,
	}}
	e.op.Lock()
	defer e.op.Unlock()
	m.eps[key] = e
	// The record exists before any kernel object, so a crash in between
	// leaves something Restore reports and Delete or Cleanup removes.
	err = m.saveLocked(e)
	m.mu.Unlock()
	nsMade := false
	if err == nil {
		nsMade, err = m.createNetwork(ctx, e)
	}
	if err != nil {
		// A namespace that was there before is not ours to remove.
		if uerr := m.teardown(e, !nsMade); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return Endpoint{}, fmt.Errorf("create %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e.ep.State = StateReady
	if err := m.saveLocked(e); err != nil {
		return Endpoint{}, err
	}
	m.log.Info("endpoint created", "endpoint", key, "id", e.ep.ID, "ipv4", e.ep.IPv4, "ipv6", e.ep.IPv6, "netns", e.ep.NetNSPath, "hostIf", e.ep.HostIfName)
	return e.ep, nil
}

// createNetwork makes the kernel objects of e and reports whether it got
// as far as creating the namespace. The caller holds e.op.
func (m *Manager) createNetwork(ctx context.Context, e *entry) (nsMade bool, err error) {
	ep := e.ep // fields set by Create; only this goroutine writes them now
	if err := m.ensureNAT(); err != nil {
		return false, err
	}
	m.mu.Lock()
	err = m.ensureHostLocked()
	m.mu.Unlock()
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(ep.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return false, err
	}
	f.Close()
	if err := ensureNetNSDir(m.cfg.NetNSDir); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := createNetNS(ep.NetNSPath); err != nil {
		return false, err
	}
	return true, m.createLinks(ctx, e)
}

// createLinks creates and configures e's veth pair inside and outside
// its (new) namespace.
func (m *Manager) createLinks(ctx context.Context, e *entry) error {
	ep := e.ep
	l, err := createVeth(ep.NetNSPath, ep.HostIfName, linkAlias(m.cfg.Instance, ep.Key()))
	if err != nil {
		if l != nil {
			netlinkDelete(l)
		}
		return err
	}
	m.mu.Lock()
	e.ep.HostIfIndex = l.Attrs().Index
	e.ep.HostMAC = l.Attrs().HardwareAddr.String()
	ep = e.ep
	err = m.saveLocked(e)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := setupHost(l, &ep); err != nil {
		return err
	}
	mac, err := net.ParseMAC(ep.HostMAC)
	if err != nil {
		return fmt.Errorf("host interface %s: MAC %q: %w", ep.HostIfName, ep.HostMAC, err)
	}
	podMAC, err := setupPod(ep.NetNSPath, mac, &ep)
	if err != nil {
		return err
	}
	m.mu.Lock()
	e.ep.MAC = podMAC
	m.mu.Unlock()
	return nil
}

// ensureNAT installs the instance's masquerade table once per Manager.
func (m *Manager) ensureNAT() error {
	m.natMu.Lock()
	defer m.natMu.Unlock()
	m.mu.Lock()
	ready := m.natReady
	m.mu.Unlock()
	if ready {
		return nil
	}
	m.mu.Lock()
	v4, v6 := m.ipam.Pools()
	m.mu.Unlock()
	if err := ensureNAT(m.cfg.Instance, v4, v6); err != nil {
		return err
	}
	m.mu.Lock()
	m.natReady = true
	m.mu.Unlock()
	return nil
}

// saveLocked writes e's record. The caller holds m.mu.
func (m *Manager) saveLocked(e *entry) error {
	return writeJSON(endpointFile(m.cfg.StateDir, e.ep.ID), e.ep)
}

// lookup returns the entry of key.
func (m *Manager) lookup(key Key) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	e, ok := m.eps[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return e, nil
}

// lockEntry returns key's entry with e.op held, or an error if the
// endpoint is gone once the lock is taken (deleted meanwhile).
func (m *Manager) lockEntry(key Key) (*entry, error) {
	e, err := m.lookup(key)
	if err != nil {
		return nil, err
	}
	e.op.Lock()
	m.mu.Lock()
	current := !m.closed && m.eps[key] == e
	m.mu.Unlock()
	if !current {
		e.op.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return e, nil
}

// Start runs cmd inside ep's network namespace, with stdout and stderr
// appended to ep's log file. It fails with ErrRunning while an earlier
// process runs; a process that exited may be started again. ep must be
// the current endpoint of its name (the ID is compared), so a stale value
// from before a Delete and re-Create cannot start anything.
func (m *Manager) Start(ctx context.Context, ep Endpoint, cmd Command) (Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return Endpoint{}, err
	}
	e, err := m.lockEntry(ep.Key())
	if err != nil {
		return Endpoint{}, err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	cur := e.ep
	m.mu.Unlock()
	if cur.ID != ep.ID {
		return Endpoint{}, fmt.Errorf("%w: %s has id %d, not %d", ErrNotFound, ep.Key(), cur.ID, ep.ID)
	}
	if cur.State == StateCreating || cur.State == StateBroken {
		return Endpoint{}, fmt.Errorf("%w: %s: %s %s", ErrBroken, ep.Key(), cur.State, cur.Problem)
	}
	p, err := m.procOf(e)
	if err != nil {
		return Endpoint{}, err
	}
	if p != nil && !p.exited() {
		return Endpoint{}, fmt.Errorf("%w: %s (pid %d)", ErrRunning, ep.Key(), p.pid)
	}
	p, rec, err := startProcess(cur.NetNSPath, cmd, cur.LogPath)
	if err != nil {
		return Endpoint{}, fmt.Errorf("%s: %w", ep.Key(), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := e.proc; old != nil {
		old.release()
	}
	e.proc = p
	e.ep.Process = &rec
	e.ep.State = StateRunning
	err = m.saveLocked(e)
	go m.watch(e, p)
	m.log.Info("process started", "endpoint", ep.Key(), "pid", rec.PID, "args", rec.Args)
	return e.ep, err
}

// watch records p's exit in e's state.
func (m *Manager) watch(e *entry, p *proc) {
	select {
	case <-p.done:
		m.markExited(e, p)
	case <-p.closing:
	}
}

// markExited records that p, e's process, has exited. It is idempotent.
func (m *Manager) markExited(e *entry, p *proc) {
	<-p.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || e.proc != p || e.ep.Process == nil || e.ep.Process.Exited != nil {
		return
	}
	at := p.exitedAt.UTC()
	pr := *e.ep.Process
	pr.Exited, pr.ExitCode, pr.Signal = &at, p.exitCode, p.signal
	e.ep.Process = &pr
	if e.ep.State == StateRunning {
		e.ep.State = StateExited
	}
	if err := m.saveLocked(e); err != nil {
		m.log.Error("record process exit", "endpoint", e.ep.Key(), "err", err)
	}
	switch {
	case p.exitCode != nil:
		m.log.Info("process exited", "endpoint", e.ep.Key(), "pid", p.pid, "exitCode", *p.exitCode)
	case p.signal != "":
		m.log.Info("process exited", "endpoint", e.ep.Key(), "pid", p.pid, "signal", p.signal)
	default:
		m.log.Info("process exited (adopted: status unknown)", "endpoint", e.ep.Key(), "pid", p.pid)
	}
}

// procOf returns e's process handle, adopting the recorded process if
// this Manager has not seen it yet (Stop or Delete without Restore). The
// caller holds e.op.
func (m *Manager) procOf(e *entry) (*proc, error) {
	m.mu.Lock()
	p, rec := e.proc, e.ep.Process
	m.mu.Unlock()
	if p != nil || rec == nil || rec.Exited != nil {
		return p, nil
	}
	p, ok, err := adoptProcess(rec)
	if err != nil || !ok {
		return nil, err
	}
	m.mu.Lock()
	e.proc = p
	m.mu.Unlock()
	go m.watch(e, p)
	return p, nil
}

// Stop stops the endpoint's process: SIGTERM, then SIGKILL once ctx is
// done or the Manager's StopTimeout has passed, whichever is first; then
// SIGKILL to every other process left in the endpoint's network
// namespace (children, daemons), as a pod's sandbox does. Stopping an
// endpoint with no running process only does the last step.
func (m *Manager) Stop(ctx context.Context, key Key) error {
	e, err := m.lockEntry(key)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	return m.stopLocked(ctx, e)
}

// stopLocked stops e's processes. The caller holds e.op.
func (m *Manager) stopLocked(ctx context.Context, e *entry) error {
	p, err := m.procOf(e)
	if err != nil {
		return err
	}
	m.mu.Lock()
	ep := e.ep
	m.mu.Unlock()
	if p != nil && !p.exited() {
		if err := p.sendSignal(syscall.SIGTERM); err != nil {
			return err
		}
		grace := time.NewTimer(m.cfg.StopTimeout)
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-grace.C:
		}
		grace.Stop()
		if !p.exited() {
			m.log.Info("process did not exit on SIGTERM, killing it", "endpoint", ep.Key(), "pid", p.pid)
			if err := p.sendSignal(syscall.SIGKILL); err != nil {
				return err
			}
		}
	}
	if ns, err := statNS(ep.NetNSPath); err == nil && isNetNS(ep.NetNSPath) {
		if err := killNetNS(ns, 5*time.Second); err != nil {
			return fmt.Errorf("%s: %w", ep.Key(), err)
		}
	}
	if p != nil {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%s: pid %d did not exit after SIGKILL", ep.Key(), p.pid)
		}
		m.markExited(e, p)
	}
	return nil
}

// Delete stops the endpoint's processes and removes its namespace, veth
// (and with it the host routes), state and log, then releases its
// addresses. It works on broken endpoints too.
func (m *Manager) Delete(ctx context.Context, key Key) error {
	e, err := m.lockEntry(key)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	if err := m.stopLocked(ctx, e); err != nil {
		return err
	}
	if err := m.teardown(e, false); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.log.Info("endpoint deleted", "endpoint", key)
	return nil
}

// teardown removes e's kernel objects, files and addresses, and forgets
// e; with keepNS it leaves the namespace path alone (Create found it
// there). The caller holds e.op and has stopped e's process. Steps are
// ordered so that a crash part-way leaves a record for the rest: the
// record goes after the kernel objects, the allocation after the record.
func (m *Manager) teardown(e *entry, keepNS bool) error {
	m.mu.Lock()
	ep := e.ep
	m.mu.Unlock()
	var errs []error
	if err := deleteOwnedLink(ep.HostIfName, linkAlias(m.cfg.Instance, ep.Key()), ep.NetNSPath); err != nil {
		errs = append(errs, err)
	}
	if !keepNS {
		if ns, err := statNS(ep.NetNSPath); err == nil && isNetNS(ep.NetNSPath) {
			if err := killNetNS(ns, 5*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if err := deleteNetNS(ep.NetNSPath); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.Remove(endpointFile(m.cfg.StateDir, ep.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(ep.LogPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if e.proc != nil {
		e.proc.release()
	}
	if m.eps[ep.Key()] == e {
		delete(m.eps, ep.Key())
	}
	if err := m.ipam.Release(ep.ID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteOwnedLink deletes the interface name if it is the endpoint's:
// its alias says so, or (a crash came between creating it and setting the
// alias) its peer is eth0 in the endpoint's namespace, which only the
// endpoint's own Create can have made. An interface of the same name that
// is neither is left alone.
func deleteOwnedLink(name, alias, nsPath string) error {
	l, err := netlinkLinkByName(name)
	if err != nil || l == nil {
		return err
	}
	if a := l.Attrs().Alias; a != alias && (a != "" || !isPeerIn(nsPath, l.Attrs().Index)) {
		return nil
	}
	return deleteLink(name, l.Attrs().Index)
}

// Logs opens the endpoint's log: the stdout and stderr of every process
// started in it, appended in order.
func (m *Manager) Logs(key Key) (io.ReadCloser, error) {
	e, err := m.lookup(key)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	path := e.ep.LogPath
	m.mu.Unlock()
	return os.Open(path)
}

// Get returns the endpoint of key.
func (m *Manager) Get(key Key) (Endpoint, error) {
	e, err := m.lookup(key)
	if err != nil {
		return Endpoint{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return e.ep, nil
}

// List returns every endpoint, ordered by namespace and name.
func (m *Manager) List() []Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Endpoint, 0, len(m.eps))
	for _, e := range m.eps {
		out = append(out, e.ep)
	}
	sortEndpoints(out)
	return out
}

// Config returns the Manager's configuration with defaults filled in.
func (m *Manager) Config() Config { return m.cfg }
