package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The load generator runs as a hidden subcommand of the benchmark binary,
// re-executed inside an endpoint namespace:
//
//	datapath __loadgen serve -ports 7001,7002
//	datapath __loadgen rr  -to 10.250.2.2:7001 -duration 5s
//	datapath __loadgen crr -to 10.250.2.2:7001 -duration 5s
//
// It uses blocking socket system calls rather than Go's network poller, as
// netperf does, so that a transaction costs the kernel path plus a read and
// a write, not an epoll wake-up and a goroutine switch on top: the
// datapath's share of each transaction, and so any overhead it adds, stays
// visible.
const loadgenCmd = "__loadgen"

const (
	// maxOps bounds every client loop in count as well as in time.
	maxOps = 100_000_000
	// maxErrors is how many failed connections a crr run tolerates before
	// it gives up; a healthy run has none.
	maxErrors = 100
	// ioTimeout bounds every blocking connect, read and write.
	ioTimeout = 3 * time.Second
	// serverLifetime bounds an echo server that its parent forgot.
	serverLifetime = 2 * time.Hour
)

// loadResult is what a client subcommand prints as JSON.
type loadResult struct {
	Ops     int64   `json:"ops"`
	Seconds float64 `json:"seconds"`
	Errors  int64   `json:"errors"`
	// CPU is the CPU time, user and system, that the client used during
	// the loop, in seconds. Softirq work done in its context (the sending
	// side of the forwarding path) is included.
	CPU float64 `json:"cpu_seconds"`
}

// cpuSeconds is this process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// rate is operations per second.
func (r loadResult) rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Seconds
}

// loadgenMain runs a load generator subcommand and returns the exit code.
func loadgenMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: missing subcommand (serve, rr, crr)")
		return 2
	}
	fs := flag.NewFlagSet(loadgenCmd+" "+args[0], flag.ContinueOnError)
	ports := fs.String("ports", "", "serve: comma-separated TCP ports to echo on")
	to := fs.String("to", "", "rr, crr: server address:port")
	dur := fs.Duration("duration", time.Second, "rr, crr: how long to run")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(*ports)
	case "rr", "crr":
		var ap netip.AddrPort
		if ap, err = netip.ParseAddrPort(*to); err != nil {
			break
		}
		if *dur <= 0 || *dur > maxDuration {
			err = fmt.Errorf("duration %v out of range (0, %v]", *dur, maxDuration)
			break
		}
		var r loadResult
		if args[0] == "rr" {
			r, err = requestResponse(ap, *dur)
		} else {
			r, err = connectRequestClose(ap, *dur)
		}
		if err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
	default:
		err = fmt.Errorf("unknown subcommand %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// serve echoes on every port until stdin closes (the parent went away) or
// serverLifetime passes. It prints "ready" once all ports listen, and
// answers each "cpu" line on stdin with the CPU seconds it has used.
func serve(ports string) error {
	var fds []int
	for _, p := range strings.Split(ports, ",") {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
		fd, err := listenTCP(port)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
	}
	for _, fd := range fds {
		go acceptLoop(fd)
	}
	fmt.Println("ready")
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "cpu" {
				fmt.Println(cpuSeconds())
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(serverLifetime):
	}
	return nil
}

func listenTCP(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen :%d: %w", port, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind :%d: %w", port, err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen :%d: %w", port, err)
	}
	return fd, nil
}

// acceptLoop hands each connection to a goroutine of its own; the loop
// ends with the process.
func acceptLoop(lfd int) {
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			fmt.Fprintf(os.Stderr, "loadgen serve: accept: %v\n", err)
			return
		}
		go echo(fd)
	}
}

// echo writes back whatever it reads until EOF, an error, or a minute of
// silence, so that an abandoned connection does not live forever.
func echo(fd int) {
	defer unix.Close(fd)
	setTimeouts(fd, 20*ioTimeout)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	var b [256]byte
	for {
		n, err := retryEINTR(func() (int, error) { return unix.Read(fd, b[:]) })
		if n <= 0 || err != nil {
			return
		}
		if err := writeFull(fd, b[:n]); err != nil {
			return
		}
	}
}

// requestResponse sends one byte and waits for its echo, over and over on
// one connection, for d.
func requestResponse(to netip.AddrPort, d time.Duration) (loadResult, error) {
	fd, err := dial(to)
	if err != nil {
		return loadResult{}, err
	}
	defer unix.Close(fd)
	b := []byte{'x'}
	var r loadResult
	cpu0 := cpuSeconds()
	start := time.Now()
	end := start.Add(d)
	for r.Ops < maxOps {
		if err := writeFull(fd, b); err != nil {
			return r, fmt.Errorf("transaction %d: write: %w", r.Ops, err)
		}
		if err := readFull(fd, b); err != nil {
			return r, fmt.Errorf("transaction %d: read: %w", r.Ops, err)
		}
		r.Ops++
		if time.Now().After(end) {
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	r.CPU = cpuSeconds() - cpu0
	return r, nil
}

// connectRequestClose opens a connection, sends one byte, waits for its
// echo and closes, over and over for d: netperf's TCP_CRR.
func connectRequestClose(to netip.AddrPort, d time.Duration) (loadResult, error) {
	b := []byte{'x'}
	var r loadResult
	cpu0 := cpuSeconds()
	start := time.Now()
	end := start.Add(d)
	one := func() error {
		fd, err := dial(to)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := writeFull(fd, b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if err := readFull(fd, b); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return nil
	}
	for r.Ops < maxOps {
		if err := one(); err != nil {
			r.Errors++
			if r.Errors > maxErrors {
				return r, fmt.Errorf("%d failed connections, last: %w", r.Errors, err)
			}
		} else {
			r.Ops++
		}
		if time.Now().After(end) {
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	r.CPU = cpuSeconds() - cpu0
	return r, nil
}

func dial(to netip.AddrPort) (int, error) {
	if !to.Addr().Is4() {
		return -1, fmt.Errorf("dial %v: only IPv4 is supported", to)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	setTimeouts(fd, ioTimeout)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	// Blocking connect honours SO_SNDTIMEO.
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(to.Port()), Addr: to.Addr().As4()}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %v: %w", to, err)
	}
	return fd, nil
}

func setTimeouts(fd int, d time.Duration) {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}

// retryEINTR repeats a socket call interrupted by a signal: with socket
// timeouts set, Linux does not restart them on its own. The retries are
// bounded so that a signal storm cannot spin forever.
func retryEINTR(f func() (int, error)) (int, error) {
	for i := 0; ; i++ {
		n, err := f()
		if errors.Is(err, unix.EINTR) && i < 100 {
			continue
		}
		return n, err
	}
}

func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := retryEINTR(func() (int, error) { return unix.Write(fd, b) })
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := retryEINTR(func() (int, error) { return unix.Read(fd, b) })
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return nil
}

// ---- parent side ----

// selfExe is the binary re-executed for load generation: the benchmark
// itself, or the test binary under go test (TestMain dispatches).
func selfExe() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return exe, nil
}

// loadgenEnv turns off asynchronous preemption in the children: its
// signals would interrupt the blocking socket calls being timed.
func loadgenEnv() []string { return append(os.Environ(), "GODEBUG=asyncpreemptoff=1") }

// echoServer is a running "__loadgen serve" child.
type echoServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// lines carries the server's output after "ready".
	lines chan string
}

// startEchoServer starts an echo server on ports inside ns and waits until
// it listens.
func startEchoServer(ns netns.NsHandle, ports ...uint16) (*echoServer, error) {
	exe, err := selfExe()
	if err != nil {
		return nil, err
	}
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	cmd := exec.Command(exe, loadgenCmd, "serve", "-ports", strings.Join(ps, ","))
	cmd.Env = loadgenEnv()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := startIn(ns, cmd); err != nil {
		return nil, fmt.Errorf("start echo server: %w", err)
	}
	s := &echoServer{cmd: cmd, stdin: stdin, lines: make(chan string, 1)}
	ready := make(chan error, 1)
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() || sc.Text() != "ready" {
			ready <- fmt.Errorf("unexpected output %q (%v)", sc.Text(), sc.Err())
			return
		}
		ready <- nil
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default: // nobody asked; drop it
			}
		}
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Second):
		err = errors.New("not ready after 10s")
	}
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("echo server: %w", err)
	}
	return s, nil
}

// CPU returns the CPU seconds, user and system, that the server has used
// so far, softirq work in its context (the receiving side) included.
func (s *echoServer) CPU() (float64, error) {
	if _, err := io.WriteString(s.stdin, "cpu\n"); err != nil {
		return 0, fmt.Errorf("echo server cpu: %w", err)
	}
	select {
	case line, ok := <-s.lines:
		if !ok {
			return 0, errors.New("echo server cpu: server exited")
		}
		return strconv.ParseFloat(line, 64)
	case <-time.After(5 * time.Second):
		return 0, errors.New("echo server cpu: no answer in 5s")
	}
}

// Stop closes the server's stdin, which makes it exit, and kills it if it
// has not exited within a second.
func (s *echoServer) Stop() {
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// runClient runs a "__loadgen rr|crr" client inside ns for d.
func runClient(ctx context.Context, ns netns.NsHandle, kind string, to netip.AddrPort, d time.Duration) (loadResult, error) {
	exe, err := selfExe()
	if err != nil {
		return loadResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d+2*ioTimeout+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, loadgenCmd, kind, "-to", to.String(), "-duration", d.String())
	cmd.Env = loadgenEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startIn(ns, cmd); err != nil {
		return loadResult{}, fmt.Errorf("start %s client: %w", kind, err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return loadResult{}, fmt.Errorf("%s client: %w: %s", kind, err, strings.TrimSpace(stderr.String()))
	}
	var r loadResult
	if err := json.Unmarshal([]byte(stdout.String()), &r); err != nil {
		return loadResult{}, fmt.Errorf("%s client output %q: %w", kind, stdout.String(), err)
	}
	if r.Ops <= 0 || r.Seconds <= 0 {
		return r, fmt.Errorf("%s client made no progress: %+v", kind, r)
	}
	if r.Errors > 0 && float64(r.Errors) > 0.001*float64(r.Ops) {
		return r, fmt.Errorf("%s client: %d errors in %d operations", kind, r.Errors, r.Ops)
	}
	return r, nil
}
