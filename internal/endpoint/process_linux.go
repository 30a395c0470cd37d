package endpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/netnsexec"
)

// proc is a process the Manager watches: its own child (cmd set), or a
// process adopted by Restore through a pidfd. done is closed when the
// process has exited; exit fields are set before that.
type proc struct {
	pid   int
	cmd   *exec.Cmd
	pidfd *os.File // adopted processes only

	done     chan struct{}
	exitCode *int
	signal   string
	exitedAt time.Time

	closeOnce sync.Once
	closing   chan struct{} // Manager.Close: stop watching, keep the process
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// sendSignal signals the process itself, never a reused PID: own
// children through os.Process and adopted ones through their pidfd
// (both pidfd-based). A process that is gone is not an error.
func (p *proc) sendSignal(sig syscall.Signal) error {
	var err error
	if p.cmd != nil {
		err = p.cmd.Process.Signal(sig)
	} else {
		err = unix.PidfdSendSignal(int(p.pidfd.Fd()), sig, nil, 0)
	}
	if err == nil || errors.Is(err, os.ErrProcessDone) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, err)
}

// release stops watching without touching the process.
func (p *proc) release() { p.closeOnce.Do(func() { close(p.closing) }) }

// startProcess runs c inside the namespace at nsPath. The fork happens on
// an OS thread switched into the namespace, so the child starts there and
// never in the Manager's namespace; Setsid puts it in a session of its own,
// detached from the Manager's terminal and process group, and nothing ties
// its life to the Manager's (no parent-death signal), so it survives the
// Manager being killed. stdin is /dev/null; stdout and stderr append to
// logPath.
func startProcess(nsPath string, c Command, logPath string) (*proc, Process, error) {
	if len(c.Args) == 0 || c.Args[0] == "" {
		return nil, Process{}, fmt.Errorf("%w command: no program", ErrInvalid)
	}
	env := c.Env
	if envValue(env, "PATH") == "" {
		env = append(append([]string(nil), env...), "PATH="+DefaultPath)
	}
	dir := c.Dir
	if dir == "" {
		dir = "/"
	}
	path, err := lookPath(c.Args[0], dir, envValue(env, "PATH"))
	if err != nil {
		return nil, Process{}, err
	}
	boot, err := bootID()
	if err != nil {
		return nil, Process{}, err
	}
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, Process{}, err
	}
	defer log.Close() // the child has its own descriptors
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string(nil), c.Args...),
		Env:         env,
		Dir:         dir,
		Stdout:      log,
		Stderr:      log,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := netnsexec.DoPath(nsPath, cmd.Start); err != nil {
		return nil, Process{}, fmt.Errorf("start %s: %w", c.Args[0], err)
	}
	started := time.Now()
	pid := cmd.Process.Pid
	// The child is not waited for yet, so /proc/<pid> exists even if
	// it has exited already.
	st, _, err := procStat(pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, Process{}, fmt.Errorf("read start time of pid %d: %w", pid, err)
	}
	p := &proc{pid: pid, cmd: cmd, done: make(chan struct{}), closing: make(chan struct{})}
	go func() {
		cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				code := ws.ExitStatus()
				p.exitCode = &code
			case ws.Signaled():
				p.signal = ws.Signal().String()
			}
		}
		p.exitedAt = time.Now()
		close(p.done)
	}()
	return p, Process{Args: cmd.Args, PID: pid, StartTime: st, BootID: boot, Started: started}, nil
}

// adoptProcess finds the process rec describes, if it still runs: same
// boot, same PID and same start time. It opens a pidfd first and checks
// the start time after, so the pidfd cannot refer to a process that
// reused the PID.
func adoptProcess(rec *Process) (*proc, bool, error) {
	boot, err := bootID()
	if err != nil {
		return nil, false, err
	}
	if rec == nil || rec.Exited != nil || rec.BootID != boot || rec.PID <= 0 {
		return nil, false, nil
	}
	fd, err := unix.PidfdOpen(rec.PID, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pidfd_open %d: %w", rec.PID, err)
	}
	st, state, err := procStat(rec.PID)
	if err != nil || st != rec.StartTime || state == 'Z' || state == 'X' {
		unix.Close(fd)
		return nil, false, nil
	}
	p := &proc{
		pid:     rec.PID,
		pidfd:   os.NewFile(uintptr(fd), "pidfd"),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
	go p.watchPidfd()
	return p, true, nil
}

// watchPidfd waits on the runtime's poller until the pidfd is readable,
// which happens when the process exits, or until release.
func (p *proc) watchPidfd() {
	rc, err := p.pidfd.SyscallConn()
	if err == nil {
		go func() {
			select {
			case <-p.closing:
				p.pidfd.SetReadDeadline(time.Now()) // wakes the Read below
			case <-p.done:
			}
		}()
		err = rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, perr := unix.Poll(fds, 0)
			return perr == nil && n > 0
		})
	}
	select {
	case <-p.closing:
		p.pidfd.Close()
		return // released: the process may well still run
	default:
	}
	if err != nil {
		// Not pollable: fall back to polling /proc.
		for {
			if _, state, err := procStat(p.pid); err != nil || state == 'Z' || state == 'X' {
				break
			}
			select {
			case <-p.closing:
				p.pidfd.Close()
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	p.exitedAt = time.Now()
	close(p.done)
}

// procStat returns the start time (field 22, clock ticks after boot) and
// state (field 3) of pid from /proc/<pid>/stat.
func procStat(pid int) (uint64, byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may contain
	// spaces and parentheses: fields after it start past the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return st, f[0][0], nil
}

// bootID identifies this boot; start times are only comparable within it.
func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// lookPath resolves a program the way a shell started with pathEnv
// would: a name with a slash is taken relative to dir, anything else is
// searched in pathEnv. The Manager's own PATH plays no part.
func lookPath(file, dir, pathEnv string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", p)
		}
		return nil
	}
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		if err := check(file); err != nil {
			return "", fmt.Errorf("%w command: %v", ErrInvalid, err)
		}
		return file, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		if p := filepath.Join(d, file); check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w command: %q not found in PATH %s", ErrInvalid, file, pathEnv)
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in exec
		}
	}
	return v
}

// signalNetNS sends sig to every process whose network namespace is ns,
// except the Manager's own. Each process is addressed through a pidfd
// opened before its namespace is checked, so a reused PID is never hit.
// It returns how many processes it found.
func signalNetNS(ns nsID, sig syscall.Signal) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	n := 0
	for _, de := range ents {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == self {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		id, err := statNS("/proc/" + de.Name() + "/ns/net")
		if err == nil && id == ns {
			n++
			if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				unix.Close(fd)
				return n, fmt.Errorf("signal %v to pid %d: %w", sig, pid, err)
			}
		}
		unix.Close(fd)
	}
	return n, nil
}

// killNetNS kills every process in ns and waits, up to timeout, until
// none is left.
func killNetNS(ns nsID, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := signalNetNS(ns, unix.SIGKILL)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still in the network namespace after SIGKILL", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
