package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/agent"
	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/netnsexec"
	"github.com/rampartsec/rampart/internal/testenv"
)

// TestMain lets the test binary double as the workloads the node runs:
// with RAMPART_TEST_WORKLOAD set it serves or sleeps instead of testing.
func TestMain(m *testing.M) {
	switch os.Getenv("RAMPART_TEST_WORKLOAD") {
	case "":
		os.Exit(m.Run())
	case "server":
		serve()
	case "httpserver":
		serveHTTP()
	case "sleep":
		time.Sleep(time.Hour)
	case "node":
		runNode()
	}
	os.Exit(0)
}

// runNode runs a node in this process from RAMPART_TEST_NODE (JSON
// agent.Config fields), so that a test can SIGKILL it.
func runNode() {
	var cfg struct {
		StateDir, Socket, PodCIDR4, PodCIDR6, MetricsAddr string
	}
	if err := json.Unmarshal([]byte(os.Getenv("RAMPART_TEST_NODE")), &cfg); err != nil {
		fmt.Println("config:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err := agent.Run(ctx, agent.Config{
		StateDir: cfg.StateDir, Socket: cfg.Socket, MetricsAddr: cfg.MetricsAddr,
		PodCIDR4: netip.MustParsePrefix(cfg.PodCIDR4), PodCIDR6: netip.MustParsePrefix(cfg.PodCIDR6),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Println("node:", err)
		os.Exit(1)
	}
}

// serve echoes on TCP and UDP ports 8080 and 8081, IPv4 and IPv6.
func serve() {
	for _, port := range []string{"8080", "8081"} {
		l, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		pc, err := net.ListenPacket("udp", ":"+port)
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], addr)
			}
		}()
	}
	fmt.Println("serving")
	select {}
}

func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "eBPF, network namespaces")
}

// testNode runs a node as a child process of the test, with its own state
// directory, socket and pod CIDRs, so that the test can kill it with
// SIGKILL as a crash would.
type testNode struct {
	t        *testing.T
	stateDir string
	socket   string
	metrics  string
	env      string
	cmd      *exec.Cmd
	exited   chan error
	logs     *bytes.Buffer
	c        *api.Client
}

func startNode(t *testing.T, stateDir string, cidr4, cidr6 string) *testNode {
	t.Helper()
	n := &testNode{t: t, stateDir: stateDir, socket: stateDir + ".sock", metrics: freeLoopbackAddr(t)}
	cfg, _ := json.Marshal(map[string]string{
		"StateDir": stateDir, "Socket": n.socket, "PodCIDR4": cidr4, "PodCIDR6": cidr6, "MetricsAddr": n.metrics,
	})
	n.env = string(cfg)
	n.start()
	return n
}

func freeLoopbackAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (n *testNode) start() {
	n.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.t.Fatal(err)
	}
	n.logs = &bytes.Buffer{}
	n.cmd = exec.Command(exe)
	n.cmd.Env = append(os.Environ(), "RAMPART_TEST_WORKLOAD=node", "RAMPART_TEST_NODE="+n.env)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan error, 1)
	go func() { n.exited <- n.cmd.Wait() }()
	n.c = api.NewClient(n.socket)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := n.c.Status(context.Background()); err == nil {
			return
		}
		select {
		case err := <-n.exited:
			n.t.Fatalf("node exited: %v\n%s", err, n.logs)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("node did not come up in 60s\n%s", n.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill stops the node with SIGKILL: nothing is torn down on the way out.
func (n *testNode) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
	if out := n.logs.String(); strings.Contains(out, "ERROR") {
		n.t.Logf("node log:\n%s", out)
	}
}

func (n *testNode) apply(yaml string) {
	n.t.Helper()
	if _, err := n.c.Apply(context.Background(), api.ApplyRequest{Inputs: []api.Input{{Name: "test.yaml", Data: []byte(yaml)}}}); err != nil {
		n.t.Fatalf("apply: %v", err)
	}
}

func (n *testNode) delete(yaml string) {
	n.t.Helper()
	if _, err := n.c.Apply(context.Background(), api.ApplyRequest{Delete: true, Inputs: []api.Input{{Name: "test.yaml", Data: []byte(yaml)}}}); err != nil {
		n.t.Fatalf("delete: %v", err)
	}
}

func (n *testNode) run(name, ns string, labels map[string]string, workload string) api.Endpoint {
	n.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.t.Fatal(err)
	}
	ep, err := n.c.Run(context.Background(), api.RunRequest{
		Name: name, Namespace: ns, Labels: labels,
		Ports:   []api.Port{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "dns", Port: 8081, Protocol: "UDP"}},
		Command: []string{"/usr/bin/env", "RAMPART_TEST_WORKLOAD=" + workload, exe},
	})
	if err != nil {
		n.t.Fatalf("run %s: %v", name, err)
	}
	return *ep
}

// inNetNS runs fn with the calling goroutine's work on a thread in the
// network namespace at nsPath.
func inNetNS(t *testing.T, nsPath string, fn func()) {
	t.Helper()
	if err := netnsexec.DoPath(nsPath, func() error { fn(); return nil }); err != nil {
		t.Errorf("%v", err)
	}
}

// probe reports whether proto traffic from inside nsPath reaches addr:port
// (an echo on TCP or UDP, an echo reply on ICMP).
func probe(t *testing.T, nsPath, proto, addr string, port int) bool {
	t.Helper()
	var ok bool
	inNetNS(t, nsPath, func() { ok = probeHere(proto, addr, port) })
	return ok
}

func probeHere(proto, addr string, port int) bool {
	target := net.JoinHostPort(addr, fmt.Sprint(port))
	switch proto {
	case "tcp":
		c, err := net.DialTimeout("tcp", target, 700*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		return echo(c)
	case "udp":
		c, err := net.Dial("udp", target)
		if err != nil {
			return false
		}
		defer c.Close()
		for range 3 {
			if echo(c) {
				return true
			}
		}
		return false
	case "icmp":
		return ping(addr)
	}
	panic(proto)
}

func echo(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	msg := []byte("rampart\n")
	if _, err := c.Write(msg); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == string(msg)
}
