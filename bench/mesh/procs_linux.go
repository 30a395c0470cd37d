package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
)

// proc is a process (with its children) whose cost is measured: a Rampart
// proxy, an nginx instance or the application.
type proc interface {
	// label names it in messages: "b client", "d server", "app".
	label() string
	// pids lists its processes: one for Go, master and worker for nginx.
	pids() []int
	stop() error
}

// startTimeout bounds a child's start, certificate signing included.
const startTimeout = 30 * time.Second

// goChild is a re-executed "__app" or "__proxy" child of the benchmark.
type goChild struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex // serialises writes to stdin
	enc    *json.Encoder
	ready  chan error
	statsc chan childStats
	// exited is closed when the child's stdout ends.
	exited chan struct{}
	// auth signs the CSRs of the identity ns/sa, and no other; nil signs
	// nothing.
	auth   *ca.Authority
	ns, sa string
}

// startGoChild runs the benchmark binary with args, and env added to the
// benchmark's environment, and waits until it is ready. It signs the
// child's CSRs for the identity ns/sa with auth, as a control plane signs
// for a node agent it has authenticated.
func startGoChild(ctx context.Context, name string, args, env []string, auth *ca.Authority, ns, sa string) (*goChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, args...)
	if len(env) > 0 {
		// A later entry wins over the inherited one of the same name.
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stderr = &prefixWriter{prefix: name + ": ", w: os.Stderr}
	// The child dies with the benchmark even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &goChild{
		name: name, cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin),
		ready: make(chan error, 1), statsc: make(chan childStats, 1), exited: make(chan struct{}),
		auth: auth, ns: ns, sa: sa,
	}
	go c.read(ctx, stdout)
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case err = <-c.ready:
	case <-t.C:
		err = fmt.Errorf("not ready after %v", startTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func (c *goChild) read(ctx context.Context, stdout io.Reader) {
	defer close(c.exited)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		var m ctlMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			fmt.Fprintf(os.Stderr, "%s: unexpected output %q\n", c.name, sc.Text())
			continue
		}
		switch m.Op {
		case opReady:
			c.ready <- nil
		case opSign:
			c.send(c.sign(ctx, m))
		case opStats:
			if m.Stats != nil {
				select {
				case c.statsc <- *m.Stats:
				default:
				}
			}
		}
	}
	select {
	case c.ready <- errors.New("exited before it was ready"):
	default:
	}
}

// sign answers a CSR, for the child's own identity only.
func (c *goChild) sign(ctx context.Context, m ctlMsg) ctlMsg {
	if c.auth == nil || m.Namespace != c.ns || m.ServiceAccount != c.sa {
		return ctlMsg{Op: opSigned, Error: fmt.Sprintf("%s may not ask for %s/%s", c.name, m.Namespace, m.ServiceAccount)}
	}
	chain, bundle, err := c.auth.Sign(ctx, m.CSR, m.Namespace, m.ServiceAccount)
	if err != nil {
		return ctlMsg{Op: opSigned, Error: err.Error()}
	}
	return ctlMsg{Op: opSigned, Chain: chain, Bundle: bundle}
}

func (c *goChild) send(m ctlMsg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.Encode(m)
}

func (c *goChild) label() string { return c.name }
func (c *goChild) pids() []int   { return []int{c.cmd.Process.Pid} }

// stats asks the child for its counters.
func (c *goChild) stats() (childStats, error) {
	if err := c.send(ctlMsg{Op: opStats}); err != nil {
		return childStats{}, fmt.Errorf("%s stats: %w", c.name, err)
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case s := <-c.statsc:
		return s, nil
	case <-c.exited:
		return childStats{}, fmt.Errorf("%s stats: the child exited", c.name)
	case <-t.C:
		return childStats{}, fmt.Errorf("%s stats: no answer in 5s", c.name)
	}
}

// stop closes the child's stdin, which makes it exit, and kills it if it
// has not within three seconds.
func (c *goChild) stop() error {
	c.stdin.Close()
	return waitOrKill(c.cmd, 3*time.Second)
}

// waitOrKill waits for cmd to exit, killing it after d. An exit caused by
// the kill is not an error.
func waitOrKill(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return nil
	}
}

// nginxProc is one nginx instance: its master, started here in the
// foreground (daemon off), and the worker the master forks.
type nginxProc struct {
	name    string
	cmd     *exec.Cmd
	workers []int
	errLog  string
	stderr  *syncBuffer
	exited  chan struct{}
}

// startNginx writes side's configuration into dir, starts nginx with it
// and waits until it accepts connections and its worker runs.
func startNginx(ctx context.Context, bin, dir string, side nginxSide) (*nginxProc, error) {
	name := string(side.cfg) + " " + side.name
	conf := filepath.Join(dir, side.name+".conf")
	if err := os.WriteFile(conf, []byte(nginxConf(side, dir)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-g", "daemon off;")
	n := &nginxProc{name: name, cmd: cmd, errLog: filepath.Join(dir, side.name+"-error.log"), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.stderr, n.stderr
	// SIGTERM lets the master stop its worker when the benchmark dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(n.exited) }()
	fail := func(err error) (*nginxProc, error) {
		n.stop()
		return nil, fmt.Errorf("%s: %w%s", name, err, n.output())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-n.exited:
			return fail(fmt.Errorf("exited: %v", waitErr))
		case <-ctx.Done():
			return fail(ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			return fail(errors.New("not accepting connections after 10s"))
		}
		ws, err := childrenOf(cmd.Process.Pid)
		if err != nil {
			return fail(err)
		}
		if len(ws) > 0 && accepts(side.listen) {
			n.workers = ws
			return n, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accepts reports whether a TCP connection to a succeeds.
func accepts(a netip.AddrPort) bool {
	c, err := net.DialTimeout("tcp", a.String(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// output returns what nginx printed and logged, for an error message.
func (n *nginxProc) output() string {
	var parts []string
	if s := strings.TrimSpace(n.stderr.String()); s != "" {
		parts = append(parts, s)
	}
	if b, err := os.ReadFile(n.errLog); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "\n" + strings.Join(parts, "\n")
}

func (n *nginxProc) label() string { return n.name }
func (n *nginxProc) pids() []int   { return append([]int{n.cmd.Process.Pid}, n.workers...) }

// stop asks the master for a fast shutdown (SIGTERM), which stops the
// worker too, and kills it after three seconds.
func (n *nginxProc) stop() error {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(3 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// prefixWriter writes each line to w with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
