package endpoint_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/netnsexec"
	"github.com/rampartsec/rampart/internal/testenv"
)

// The test binary plays three roles, chosen by helperEnv: the tests, a
// workload started inside endpoints ("serve"), and a Manager in a process
// of its own that a test kills with SIGKILL ("manager").
const (
	helperEnv   = "RAMPART_ENDPOINT_TEST_HELPER"
	isolatedEnv = "RAMPART_ENDPOINT_TEST_ISOLATED"
)

// TestMain runs the privileged tests in a network namespace of their own,
// which plays the node's host namespace: host routes, veths, forwarding
// sysctls and nftables tables never touch the machine's real network, and
// the "world" the tests reach through masquerading is a namespace that
// exists only here. Named namespaces still go to /run/netns (the mount
// namespace is shared), under instance names unique to this process.
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve":
		os.Exit(helperServe())
	case "manager":
		os.Exit(helperManager())
	}
	if os.Geteuid() == 0 && os.Getenv(isolatedEnv) == "" {
		os.Exit(reexecIsolated())
	}
	if os.Getenv(isolatedEnv) != "" {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "isolated namespace: set lo up:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// reexecIsolated runs this test binary again, with the same arguments, in
// a new network namespace, and returns its exit code.
func reexecIsolated() int {
	runtime.LockOSThread() // Pdeathsig is tied to the forking thread
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), isolatedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "run tests in a new network namespace:", err)
		return 1
	}
	go func() {
		for s := range sigc {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	sweepNetNS(cmd.Process.Pid)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		return 1
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// sweepNetNS unmounts the named namespaces that the test process pid
// left behind if it died before its cleanups ran (a timeout, a crash).
// Its workloads exit by themselves within five minutes.
func sweepNetNS(pid int) {
	prefix := "t" + strconv.FormatInt(int64(pid), 36)
	ents, _ := os.ReadDir(endpoint.DefaultNetNSDir)
	for _, de := range ents {
		n := de.Name()
		if len(n) > len(prefix)+2 && strings.HasPrefix(n, prefix) && n[len(prefix)+1] == '-' {
			p := filepath.Join(endpoint.DefaultNetNSDir, n)
			fmt.Fprintln(os.Stderr, "removing leftover network namespace", p)
			unix.Unmount(p, unix.MNT_DETACH)
			os.Remove(p)
		}
	}
}

// helperServe is the workload: it prints its network namespace, serves
// TCP and UDP on PORT (both families) answering "pong <peer address>",
// prints a tick every 50 ms so tests can watch its log grow, and exits 0
// on SIGTERM unless IGNORE_TERM is set. With SPAWN set it first starts a
// child in a session of its own that only Stop's sweep of the namespace
// can reach. It gives up after five minutes whatever happens.
func helperServe() int {
	ino := "?"
	if fi, err := os.Stat("/proc/self/ns/net"); err == nil {
		ino = strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)
	}
	fmt.Printf("netns=%s pid=%d\n", ino, os.Getpid())
	if os.Getenv("SPAWN") != "" {
		exe, _ := os.Executable()
		c := exec.Command(exe)
		c.Env = []string{helperEnv + "=serve", "PORT=0", "IGNORE_TERM=1"}
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			fmt.Println("spawn:", err)
			return 1
		}
		fmt.Printf("child=%d\n", c.Process.Pid)
	}
	sigc := make(chan os.Signal, 1)
	if os.Getenv("IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigc, syscall.SIGTERM)
	}
	if port := os.Getenv("PORT"); port != "0" {
		ln, err := net.Listen("tcp", "[::]:"+port)
		if err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		pc, err := net.ListenPacket("udp", "[::]:"+port)
		if err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
						fmt.Fprintf(c, "pong %s\n", peerAddr(c.RemoteAddr()))
					}
				}()
			}
		}()
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte("pong "+peerAddr(from)+"\n"), from)
			}
		}()
		fmt.Println("listening")
	}
	tick := time.NewTicker(50 * time.Millisecond)
	deadline := time.After(5 * time.Minute)
	for i := 0; ; i++ {
		select {
		case <-sigc:
			fmt.Println("terminating")
			return 0
		case <-tick.C:
			fmt.Println("tick", i)
		case <-deadline:
			return 3
		}
	}
}

// peerAddr returns the IP of a TCP or UDP address, IPv4-mapped ones
// unmapped.
func peerAddr(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	return ap.Addr().Unmap().String()
}

// helperManager creates an endpoint, starts the serve helper in it,
// prints the endpoint as JSON and waits to be killed.
func helperManager() int {
	cfg := endpoint.Config{
		StateDir: os.Getenv("STATE_DIR"),
		Instance: os.Getenv("INSTANCE"),
		PodCIDR4: netip.MustParsePrefix(os.Getenv("CIDR4")),
		PodCIDR6: netip.MustParsePrefix(os.Getenv("CIDR6")),
	}
	m, err := endpoint.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	ep, err := m.Create(ctx, endpoint.Spec{Name: "survivor"})
	if err == nil {
		ep, err = m.Start(ctx, ep, serveCommand(8080))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(ep)
	select {}
}

// requirePrivileged skips a test that needs root, but only outside CI: in
// CI a missing privilege is a broken runner, and a skip would hide that
// endpoints were never tested.
func requirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		if os.Getenv(isolatedEnv) == "" {
			t.Fatal("privileged tests must run in the isolated namespace TestMain sets up")
		}
		return
	}
	testenv.RequireRoot(t, "CAP_NET_ADMIN, CAP_SYS_ADMIN")
}

// testInstance returns an instance name unique to this process, so that
// concurrent test binaries never share /run/netns names.
func testInstance(letter byte) string {
	return "t" + strconv.FormatInt(int64(os.Getpid()), 36) + string(letter)
}

func testConfig(t *testing.T, letter byte, n int) endpoint.Config {
	return endpoint.Config{
		StateDir: filepath.Join(t.TempDir(), "state"),
		Instance: testInstance(letter),
		PodCIDR4: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 200+n)),
		PodCIDR6: netip.MustParsePrefix(fmt.Sprintf("fd00:%d::/64", 200+n)),
	}
}

// mustManager opens a Manager and, when the test ends, cleans up its
// instance (with a fresh Manager if the test closed this one) and checks
// that nothing of it is left.
func mustManager(t *testing.T, cfg endpoint.Config) *endpoint.Manager {
	t.Helper()
	requirePrivileged(t)
	m, err := endpoint.New(cfg)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := m.Cleanup(ctx)
		if errors.Is(err, endpoint.ErrClosed) {
			var m2 *endpoint.Manager
			if m2, err = endpoint.New(cfg); err == nil {
				err = m2.Cleanup(ctx)
			}
		}
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		assertInstanceGone(t, cfg)
	})
	return m
}

// assertInstanceGone checks that no network namespace, host interface,
// nftables table or state file of cfg's instance is left.
func assertInstanceGone(t *testing.T, cfg endpoint.Config) {
	t.Helper()
	nsDir := cfg.NetNSDir
	if nsDir == "" {
		nsDir = endpoint.DefaultNetNSDir
	}
	ents, _ := os.ReadDir(nsDir)
	for _, de := range ents {
		if strings.HasPrefix(de.Name(), cfg.Instance+"-") {
			t.Errorf("network namespace %s left behind", de.Name())
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "rp"+cfg.Instance) || strings.HasPrefix(l.Attrs().Alias, "rampart:"+cfg.Instance+":") {
			t.Errorf("interface %s (alias %q) left behind", l.Attrs().Name, l.Attrs().Alias)
		}
	}
	if nftTableExists(t, endpoint.NFTableName(cfg.Instance)) {
		t.Errorf("nftables table %s left behind", endpoint.NFTableName(cfg.Instance))
	}
	if _, err := os.Stat(cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
		left, _ := filepath.Glob(filepath.Join(cfg.StateDir, "*"))
		t.Errorf("state directory %s left behind: %v", cfg.StateDir, left)
	}
}

func nftTableExists(t *testing.T, name string) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}

// serveCommand runs the serve helper on port.
func serveCommand(port int, env ...string) endpoint.Command {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return endpoint.Command{
		Args: []string{exe, "-test.run=^$"},
		Env:  append([]string{helperEnv + "=serve", "PORT=" + strconv.Itoa(port)}, env...),
	}
}

// logText returns the endpoint's log.
func logText(t *testing.T, m *endpoint.Manager, key endpoint.Key) string {
	t.Helper()
	r, err := m.Logs(key)
	if err != nil {
		t.Fatalf("logs of %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until the endpoint's log contains s.
func waitLog(t *testing.T, m *endpoint.Manager, key endpoint.Key, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		text := logText(t, m, key)
		if strings.Contains(text, s) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s never contained %q:\n%s", key, s, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// inNS runs fn on a thread in the namespace at path ("" is the test's
// own host namespace).
func inNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return inHandle(ns, fn)
}

func inHandle(ns netns.NsHandle, fn func() error) error { return netnsexec.Do(ns, fn) }

// tcpPing connects from the namespace at from to dst and returns the
// peer address the server saw.
func tcpPing(from string, dst netip.AddrPort) (string, error) {
	var c net.Conn
	err := inNS(from, func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), 3*time.Second)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("tcp %v: %w", dst, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", fmt.Errorf("tcp %v: %w", dst, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("tcp %v: %w", dst, err)
	}
	return strings.TrimPrefix(strings.TrimSpace(line), "pong "), nil
}

// udpPing sends a datagram from the namespace at from to dst, retrying a
// few times (the first may wait for neighbour resolution), and returns
// the peer address the server saw.
func udpPing(from string, dst netip.AddrPort) (string, error) {
	var c net.Conn
	err := inNS(from, func() (err error) {
		c, err = net.Dial("udp", dst.String())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("udp %v: %w", dst, err)
	}
	defer c.Close()
	buf := make([]byte, 256)
	for range 5 {
		c.Write([]byte("ping\n"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return strings.TrimPrefix(strings.TrimSpace(string(buf[:n])), "pong "), nil
		}
	}
	return "", fmt.Errorf("udp %v: no answer", dst)
}

// icmpPing sends an ICMP or ICMPv6 echo request over a raw socket opened
// in the namespace at from, and waits for the matching reply.
func icmpPing(from string, dst netip.Addr) error {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	err := inNS(from, func() (err error) {
		c, err = icmp.ListenPacket(network, laddr)
		return err
	})
	if err != nil {
		return fmt.Errorf("ping %v: %w", dst, err)
	}
	defer c.Close()
	id := rand.IntN(0xffff) + 1
	msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("rampart")}}
	b, err := msg.Marshal(nil) // the kernel fills in the ICMPv6 checksum
	if err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 1500)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return fmt.Errorf("ping %v: %w", dst, err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, peer, err := c.ReadFrom(buf)
			if err != nil {
				break // resend
			}
			rm, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || rm.Type != replyType {
				continue
			}
			if echo, ok := rm.Body.(*icmp.Echo); ok && echo.ID == id && peer.String() == dst.String() {
				return nil
			}
		}
	}
	return fmt.Errorf("ping %v: no echo reply", dst)
}

// world is a namespace outside the pod CIDRs that the test's host
// namespace routes to by default, standing in for the Internet. It uses
// documentation ranges and exists only inside the isolated namespace.
type world struct {
	v4, v6       netip.Addr // the world's addresses
	host4, host6 netip.Addr // the host's addresses on the link
	port         int
}

var (
	worldHost4 = netip.MustParseAddr("198.51.100.1")
	worldAddr4 = netip.MustParseAddr("198.51.100.2")
	worldHost6 = netip.MustParseAddr("2001:db8:100::1")
	worldAddr6 = netip.MustParseAddr("2001:db8:100::2")
)

// mustWorld creates the world namespace, joins it to the host by the veth
// "world0", makes it the default route and runs a "pong" server on port
// 7000 in it.
func mustWorld(t *testing.T) *world {
	t.Helper()
	requirePrivileged(t)
	ns, err := netnsexec.New()
	if err != nil {
		t.Fatalf("world namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })

	attrs := netlink.NewLinkAttrs()
	attrs.Name = "world0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}); err != nil {
		t.Fatalf("world veth: %v", err)
	}
	hl, err := netlink.LinkByName("world0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netlink.LinkDel(hl) })
	addr := func(a netip.Addr, bits int) *netlink.Addr {
		return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}, Flags: unix.IFA_F_NODAD}
	}
	for _, a := range []*netlink.Addr{addr(worldHost4, 24), addr(worldHost6, 64)} {
		if err := netlink.AddrAdd(hl, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		t.Fatal(err)
	}
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	lo, err := nh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*netlink.Addr{addr(worldAddr4, 24), addr(worldAddr6, 64)} {
		if err := nh.AddrAdd(eth, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []netlink.Link{lo, eth} {
		if err := nh.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	for _, gw := range []netip.Addr{worldAddr4, worldAddr6} {
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: hl.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			t.Fatalf("default route via %v: %v", gw, err)
		}
	}
	w := &world{v4: worldAddr4, v6: worldAddr6, host4: worldHost4, host6: worldHost6, port: 7000}
	var ln net.Listener
	if err := inHandle(ns, func() (err error) {
		ln, err = net.Listen("tcp", "[::]:7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					fmt.Fprintf(c, "pong %s\n", peerAddr(c.RemoteAddr()))
				}
			}()
		}
	}()
	return w
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// fileMode returns path's permission bits.
func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// podMAC returns the MAC of eth0 in ep's namespace.
func podMAC(t *testing.T, ep endpoint.Endpoint) string {
	t.Helper()
	var mac string
	err := inNS(ep.NetNSPath, func() error {
		l, err := netlink.LinkByName("eth0")
		if err == nil {
			mac = l.Attrs().HardwareAddr.String()
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s: eth0: %v", ep.Key(), err)
	}
	return mac
}
