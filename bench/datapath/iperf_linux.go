package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// iperfInstallHint is printed when iperf3 is missing.
const iperfInstallHint = `iperf3 not found in PATH: install it (Debian/Ubuntu: apt-get install -y iperf3; ` +
	`Fedora: dnf install -y iperf3), pass -iperf3 /path/to/iperf3, ` +
	`or leave throughput out with -measures rr,crr`

// findIperf resolves the iperf3 binary and returns its version line.
func findIperf(bin string) (path, version string, err error) {
	path, err = exec.LookPath(bin)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", iperfInstallHint, err)
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", path, err)
	}
	version, _, _ = strings.Cut(string(out), "\n")
	return path, strings.TrimSpace(version), nil
}

// iperfServer is an "iperf3 -s" running in a namespace.
type iperfServer struct{ cmd *exec.Cmd }

// startIperfServer starts iperf3 -s in ns and waits until it listens.
func startIperfServer(bin string, ns netns.NsHandle) (*iperfServer, error) {
	cmd := exec.Command(bin, "-s", "-p", strconv.Itoa(int(iperfPort)))
	if err := startIn(ns, cmd); err != nil {
		return nil, fmt.Errorf("start iperf3 server: %w", err)
	}
	s := &iperfServer{cmd: cmd}
	// The port is taken once the server listens; probing by binding it
	// ourselves leaves no connection behind for the server to choke on.
	for i := 0; ; i++ {
		err := inNetns(ns, func() error {
			ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", iperfPort))
			if err != nil {
				return err
			}
			ln.Close()
			return errNotListening
		})
		if errors.Is(err, syscall.EADDRINUSE) {
			return s, nil
		}
		if i == 100 {
			s.Stop()
			return nil, fmt.Errorf("iperf3 server not listening after 5s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errNotListening = errors.New("not listening yet")

// Stop kills the server.
func (s *iperfServer) Stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// iperfReport is the part of iperf3's -J output that we use.
type iperfReport struct {
	End struct {
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		// CPU is each side's user and system time as a percentage of
		// the test's length, softirq work in its context included.
		CPU struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperfResult is one iperf3 run: the throughput the receiver saw, over
// how many seconds and bytes, and the CPU seconds client and server used.
type iperfResult struct {
	BitsPerSecond, Seconds, Bytes, CPU float64
}

// runIperf runs one iperf3 client in ns against the server. iperf3 takes
// whole seconds.
func runIperf(ctx context.Context, bin string, ns netns.NsHandle, to netip.Addr, d time.Duration) (iperfResult, error) {
	whole := int(math.Ceil(d.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, time.Duration(whole)*time.Second+15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", to.String(), "-p", strconv.Itoa(int(iperfPort)),
		"-t", strconv.Itoa(whole), "-J", "--connect-timeout", "3000")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := startIn(ns, cmd); err != nil {
		return iperfResult{}, fmt.Errorf("start iperf3 client: %w", err)
	}
	werr := cmd.Wait()
	var rep iperfReport
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 client: %w (exit: %v; stderr: %s)", err, werr, strings.TrimSpace(stderr.String()))
	}
	if rep.Error != "" || werr != nil {
		return iperfResult{}, fmt.Errorf("iperf3 client: %s (exit: %v)", rep.Error, werr)
	}
	sum := rep.End.SumReceived
	if sum.BitsPerSecond <= 0 || sum.Seconds <= 0 {
		return iperfResult{}, fmt.Errorf("iperf3 client: no throughput reported")
	}
	cpu := (rep.End.CPU.HostTotal + rep.End.CPU.RemoteTotal) / 100 * sum.Seconds
	return iperfResult{BitsPerSecond: sum.BitsPerSecond, Seconds: sum.Seconds, Bytes: sum.Bytes, CPU: cpu}, nil
}
