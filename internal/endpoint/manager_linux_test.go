package endpoint_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/endpoint"
)

// TestEndpointLifecycle creates two endpoints, runs a server in one and
// checks TCP, UDP and ICMP over IPv4 and IPv6 from the other and from the
// host, the world through masquerading, the process's namespace and log,
// then Stop, a second Start and Delete.
func TestEndpointLifecycle(t *testing.T) {
	w := mustWorld(t)
	cfg := testConfig(t, 'l', 0)
	m := mustManager(t, cfg)
	ctx := context.Background()

	srv, err := m.Create(ctx, endpoint.Spec{Name: "server", Namespace: "shop", Labels: map[string]string{"app": "server"},
		Ports: []endpoint.Port{{Name: "pong", Port: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := m.Create(ctx, endpoint.Spec{Name: "client", Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, endpoint.Spec{Name: "client", Namespace: "shop"}); !errors.Is(err, endpoint.ErrExists) {
		t.Errorf("second create of shop/client: got %v, want ErrExists", err)
	}

	// Naming, addressing and state.
	for _, ep := range []endpoint.Endpoint{srv, cli} {
		if ep.State != endpoint.StateReady || ep.ID == 0 || ep.Spec.ServiceAccount != "default" {
			t.Errorf("%s: %+v", ep.Key(), ep)
		}
		if !cfg.PodCIDR4.Contains(ep.IPv4) || !cfg.PodCIDR6.Contains(ep.IPv6) {
			t.Errorf("%s: addresses %v %v outside the pod CIDRs", ep.Key(), ep.IPv4, ep.IPv6)
		}
		if ep.HostIfName != endpoint.HostIfName(cfg.Instance, ep.ID) || len(ep.HostIfName) > 15 {
			t.Errorf("%s: host interface %q", ep.Key(), ep.HostIfName)
		}
		if ep.NetNSPath != filepath.Join("/run/netns", endpoint.NetNSName(cfg.Instance, ep.Key())) || !endpoint.IsNetNSForTest(ep.NetNSPath) {
			t.Errorf("%s: namespace %s is not mounted", ep.Key(), ep.NetNSPath)
		}
		l, err := netlink.LinkByName(ep.HostIfName)
		if err != nil || l.Attrs().Index != ep.HostIfIndex || l.Attrs().Alias != "rampart:"+cfg.Instance+":"+ep.Key().String() {
			t.Errorf("%s: host link %v, %v", ep.Key(), l, err)
		}
		if mac := podMAC(t, ep); ep.MAC == "" || ep.MAC != mac {
			t.Errorf("%s: MAC %q, eth0 has %q", ep.Key(), ep.MAC, mac)
		}
		for _, key := range []string{"ipv4/conf/%s/forwarding", "ipv4/conf/%s/proxy_arp", "ipv4/conf/%s/rp_filter", "ipv6/conf/%s/force_forwarding"} {
			b, err := os.ReadFile("/proc/sys/net/" + fmt.Sprintf(key, ep.HostIfName))
			if err != nil || strings.TrimSpace(string(b)) != "1" {
				t.Errorf("%s: %s = %q, %v; want 1", ep.Key(), fmt.Sprintf(key, ep.HostIfName), b, err)
			}
		}
		for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
			routes, err := netlink.RouteGet(a.AsSlice())
			if err != nil || len(routes) == 0 || routes[0].LinkIndex != ep.HostIfIndex {
				t.Errorf("%s: route to %v: %+v, %v", ep.Key(), a, routes, err)
			}
		}
		for _, f := range []string{filepath.Join(cfg.StateDir, "endpoints", fmt.Sprintf("%04x.json", ep.ID)), ep.LogPath, filepath.Join(cfg.StateDir, "ipam.json")} {
			if mode := fileMode(t, f); mode != 0o600 {
				t.Errorf("%s: mode %v, want 0600", f, mode)
			}
		}
	}
	if mode := fileMode(t, cfg.StateDir); mode != 0o700 {
		t.Errorf("state directory mode %v, want 0700", mode)
	}
	if srv.IPv4 == cli.IPv4 || srv.IPv6 == cli.IPv6 || srv.ID == cli.ID {
		t.Fatalf("endpoints share an address or id: %+v %+v", srv, cli)
	}
	if !nftTableExists(t, endpoint.NFTableName(cfg.Instance)) {
		t.Errorf("no nftables table %s", endpoint.NFTableName(cfg.Instance))
	}
	// The uplink (the default route's interface) forwards replies.
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/world0/forwarding"); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("uplink world0 forwarding = %q, want 1", b)
	}

	// The workload.
	srv, err = m.Start(ctx, srv, serveCommand(8080))
	if err != nil {
		t.Fatal(err)
	}
	if srv.State != endpoint.StateRunning || srv.Process == nil || srv.Process.PID == 0 || srv.Process.StartTime == 0 {
		t.Fatalf("after start: %+v", srv)
	}
	if _, err := m.Start(ctx, srv, serveCommand(8080)); !errors.Is(err, endpoint.ErrRunning) {
		t.Errorf("second start: got %v, want ErrRunning", err)
	}
	log := waitLog(t, m, srv.Key(), "listening")
	var nsIno uint64
	if fi, err := os.Stat(srv.NetNSPath); err == nil {
		nsIno = fi.Sys().(*syscall.Stat_t).Ino
	}
	if !strings.Contains(log, fmt.Sprintf("netns=%d pid=%d", nsIno, srv.Process.PID)) {
		t.Errorf("the process did not start in the endpoint's namespace (inode %d):\n%s", nsIno, log)
	}
	if sid, err := unix.Getsid(srv.Process.PID); err != nil || sid != srv.Process.PID {
		t.Errorf("process is not a session leader: sid %d, %v", sid, err)
	}

	// Endpoint to endpoint, and host to endpoint: addresses arrive
	// unchanged (no masquerading inside the pod CIDRs).
	for _, tc := range []struct {
		name, from string
		dst        netip.Addr
		wantPeer   string
	}{
		{"client v4", cli.NetNSPath, srv.IPv4, cli.IPv4.String()},
		{"client v6", cli.NetNSPath, srv.IPv6, cli.IPv6.String()},
		{"host v4", "", srv.IPv4, ""},
		{"host v6", "", srv.IPv6, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(tc.dst, 8080)
			got, err := tcpPing(tc.from, dst)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantPeer != "" && got != tc.wantPeer {
				t.Errorf("TCP: server saw %s, want %s", got, tc.wantPeer)
			}
			got, err = udpPing(tc.from, dst)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantPeer != "" && got != tc.wantPeer {
				t.Errorf("UDP: server saw %s, want %s", got, tc.wantPeer)
			}
			if err := icmpPing(tc.from, tc.dst); err != nil {
				t.Error(err)
			}
		})
	}
	if err := icmpPing(srv.NetNSPath, cli.IPv4); err != nil {
		t.Errorf("server to client: %v", err)
	}

	// The world, through masquerading: the world server sees the host's
	// address on the link, and the world has no route to the pod CIDRs
	// at all, so any answer proves the translation.
	for _, tc := range []struct {
		dst  netip.Addr
		want netip.Addr
	}{{w.v4, w.host4}, {w.v6, w.host6}} {
		got, err := tcpPing(cli.NetNSPath, netip.AddrPortFrom(tc.dst, uint16(w.port)))
		if err != nil {
			t.Errorf("to the world: %v", err)
		} else if got != tc.want.String() {
			t.Errorf("world saw %s, want the host's %s", got, tc.want)
		}
		if err := icmpPing(cli.NetNSPath, tc.dst); err != nil {
			t.Errorf("to the world: %v", err)
		}
	}

	// Stop: SIGTERM is enough for this server.
	if err := m.Stop(ctx, srv.Key()); err != nil {
		t.Fatal(err)
	}
	got, err := m.Get(srv.Key())
	if err != nil {
		t.Fatal(err)
	}
	if got.State != endpoint.StateExited || got.Process.Exited == nil || got.Process.ExitCode == nil || *got.Process.ExitCode != 0 {
		t.Errorf("after stop: state %s, process %+v", got.State, got.Process)
	}
	if processAlive(srv.Process.PID) {
		t.Errorf("pid %d still runs after Stop", srv.Process.PID)
	}
	if !strings.Contains(logText(t, m, srv.Key()), "terminating") {
		t.Error("the process did not see SIGTERM")
	}
	// Start again: the log is appended to.
	if srv, err = m.Start(ctx, got, serveCommand(8080)); err != nil {
		t.Fatal(err)
	}
	waitLogCount(t, m, srv.Key(), "listening", 2)
	if _, err := tcpPing(cli.NetNSPath, netip.AddrPortFrom(srv.IPv4, 8080)); err != nil {
		t.Errorf("after restart: %v", err)
	}

	if got := m.List(); len(got) != 2 || got[0].Spec.Name != "client" || got[1].Spec.Name != "server" {
		t.Errorf("List: %+v", got)
	}

	// Delete the running endpoint: everything of it goes, and its
	// addresses are free again.
	if err := m.Delete(ctx, srv.Key()); err != nil {
		t.Fatal(err)
	}
	if processAlive(srv.Process.PID) {
		t.Errorf("pid %d still runs after Delete", srv.Process.PID)
	}
	if _, err := os.Stat(srv.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists: %v", srv.NetNSPath, err)
	}
	if _, err := netlink.LinkByName(srv.HostIfName); err == nil {
		t.Errorf("interface %s still exists", srv.HostIfName)
	}
	if routes, err := netlink.RouteGet(srv.IPv4.AsSlice()); err == nil && len(routes) > 0 && routes[0].LinkIndex == srv.HostIfIndex {
		t.Errorf("route to %v still exists", srv.IPv4)
	}
	for _, f := range []string{filepath.Join(cfg.StateDir, "endpoints", fmt.Sprintf("%04x.json", srv.ID)), srv.LogPath} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists", f)
		}
	}
	ipam := readIPAM(t, cfg)
	if strings.Contains(ipam, srv.IPv4.String()+`"`) || strings.Contains(ipam, `"`+srv.Key().String()+`"`) {
		t.Errorf("%s's allocation was not released:\n%s", srv.Key(), ipam)
	}
	if _, err := m.Get(srv.Key()); !errors.Is(err, endpoint.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := m.Delete(ctx, srv.Key()); !errors.Is(err, endpoint.ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	// A stale Endpoint value cannot start anything in a re-created one.
	again, err := m.Create(ctx, srv.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == srv.ID {
		t.Errorf("id %d reused at once", srv.ID)
	}
	if _, err := m.Start(ctx, srv, serveCommand(8080)); !errors.Is(err, endpoint.ErrNotFound) {
		t.Errorf("start with a stale endpoint: got %v, want ErrNotFound", err)
	}
}

func waitLogCount(t *testing.T, m *endpoint.Manager, key endpoint.Key, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logText(t, m, key), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log of %s has fewer than %d %q", key, n, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readIPAM(t *testing.T, cfg endpoint.Config) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, "ipam.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStopEscalates checks SIGKILL after the grace period for a process
// that ignores SIGTERM, and that a child which left the process group
// (but not the namespace) is killed too.
func TestStopEscalates(t *testing.T) {
	cfg := testConfig(t, 's', 2)
	cfg.StopTimeout = 300 * time.Millisecond
	m := mustManager(t, cfg)
	ctx := context.Background()
	ep, err := m.Create(ctx, endpoint.Spec{Name: "stubborn"})
	if err != nil {
		t.Fatal(err)
	}
	if ep, err = m.Start(ctx, ep, serveCommand(8080, "IGNORE_TERM=1", "SPAWN=1")); err != nil {
		t.Fatal(err)
	}
	log := waitLog(t, m, ep.Key(), "listening")
	var child int
	for _, line := range strings.Split(log, "\n") {
		if v, ok := strings.CutPrefix(line, "child="); ok {
			child, _ = strconv.Atoi(v)
		}
	}
	if child == 0 || !processAlive(child) {
		t.Fatalf("no child in the log:\n%s", log)
	}
	start := time.Now()
	if err := m.Stop(ctx, ep.Key()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < cfg.StopTimeout {
		t.Errorf("Stop returned after %v, before the %v grace period", d, cfg.StopTimeout)
	}
	got, _ := m.Get(ep.Key())
	if got.Process == nil || got.Process.Signal != "killed" || got.Process.ExitCode != nil {
		t.Errorf("process %+v, want killed by a signal", got.Process)
	}
	for _, pid := range []int{ep.Process.PID, child} {
		if processAlive(pid) {
			t.Errorf("pid %d survived Stop", pid)
		}
	}
	// A context that ends first cuts the grace period short.
	if ep, err = m.Start(ctx, got, serveCommand(8080, "IGNORE_TERM=1")); err != nil {
		t.Fatal(err)
	}
	waitLogCount(t, m, ep.Key(), "listening", 2)
	cfg2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := m.Stop(cfg2, ep.Key()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= cfg.StopTimeout {
		t.Errorf("Stop took %v despite a 50ms context", d)
	}
}

// TestRestoreAfterManagerKilled runs a Manager in a process of its own,
// kills it with SIGKILL, and restores its endpoint in a new Manager on the
// same state directory: the workload keeps running and logging, stays
// reachable and can be stopped.
func TestRestoreAfterManagerKilled(t *testing.T) {
	mustWorld(t) // gives the host an address to talk to endpoints from
	cfg := testConfig(t, 'r', 3)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = []string{helperEnv + "=manager", "STATE_DIR=" + cfg.StateDir, "INSTANCE=" + cfg.Instance,
		"CIDR4=" + cfg.PodCIDR4.String(), "CIDR6=" + cfg.PodCIDR6.String()}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	var before endpoint.Endpoint
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &before); err != nil {
			t.Fatalf("manager process printed %q: %v", line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager process did not create its endpoint")
	}
	// Register cleanup (a Manager of our own on the same state) only now
	// that the state directory is the child's.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !processAlive(before.Process.PID) {
		t.Fatalf("the workload (pid %d) died with its manager", before.Process.PID)
	}

	// The record loses its MAC, as one written before the field existed:
	// Restore must find it again (local delivery needs it).
	rec := filepath.Join(cfg.StateDir, "endpoints", fmt.Sprintf("%04x.json", before.ID))
	raw, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["mac"]; !ok {
		t.Fatalf("record %s has no mac field: %s", rec, raw)
	}
	delete(fields, "mac")
	if raw, err = json.Marshal(fields); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	m := mustManager(t, cfg)
	ctx := context.Background()
	got, err := m.Get(before.Key())
	if err != nil {
		t.Fatal(err)
	}
	if got.State != endpoint.StateRunning {
		t.Errorf("loaded state %s, want Running", got.State)
	}
	rep, err := m.Restore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Running) != 1 || rep.Running[0] != before.Key() || len(rep.Broken) != 0 || len(rep.Exited) != 0 || len(rep.Orphans) != 0 {
		t.Fatalf("restore report: %+v", rep)
	}
	after, _ := m.Get(before.Key())
	if after.State != endpoint.StateRunning || after.Process.PID != before.Process.PID {
		t.Errorf("after restore: %+v", after)
	}
	if mac := podMAC(t, after); after.MAC != mac || after.MAC != before.MAC {
		t.Errorf("after restore of a record without MAC: MAC %q, was %q, eth0 has %q", after.MAC, before.MAC, mac)
	}
	// Logs keep going.
	n1 := len(logText(t, m, before.Key()))
	time.Sleep(300 * time.Millisecond)
	if n2 := len(logText(t, m, before.Key())); n2 <= n1 {
		t.Errorf("log did not grow after restore (%d -> %d bytes)", n1, n2)
	}
	if _, err := tcpPing("", netip.AddrPortFrom(before.IPv4, 8080)); err != nil {
		t.Errorf("after restore: %v", err)
	}
	// Restore is idempotent, and changes nothing the second time.
	rep, err = m.Restore(ctx)
	if err != nil || len(rep.Running) != 1 {
		t.Errorf("second restore: %+v, %v", rep, err)
	}
	// The adopted process (not our child) can be stopped.
	if err := m.Stop(ctx, before.Key()); err != nil {
		t.Fatal(err)
	}
	if processAlive(before.Process.PID) {
		t.Errorf("adopted pid %d survived Stop", before.Process.PID)
	}
	after, _ = m.Get(before.Key())
	if after.State != endpoint.StateExited || after.Process.Exited == nil {
		t.Errorf("after stop: %+v", after)
	}
}

// TestRestoreReportsBroken damages a closed Manager's endpoints in the
// ways a crash or an operator can, and checks what Restore reports and
// that Delete and Cleanup still remove everything.
func TestRestoreReportsBroken(t *testing.T) {
	cfg := testConfig(t, 'b', 4)
	m1 := mustManager(t, cfg)
	ctx := context.Background()
	var eps []endpoint.Endpoint
	for _, name := range []string{"reused", "noveth", "half", "fine"} {
		ep, err := m1.Create(ctx, endpoint.Spec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	reused, noveth, half, fine := eps[0], eps[1], eps[2], eps[3]
	reused, err := m1.Start(ctx, reused, serveCommand(8080))
	if err != nil {
		t.Fatal(err)
	}
	fine, err = m1.Start(ctx, fine, serveCommand(8080))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, m1, reused.Key(), "listening")
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Get(fine.Key()); !errors.Is(err, endpoint.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if !processAlive(fine.Process.PID) {
		t.Fatal("Close stopped a process")
	}

	// "reused": the record's start time no longer matches, as when the
	// PID now belongs to another process.
	editRecord(t, cfg, reused.ID, func(ep *endpoint.Endpoint) { ep.Process.StartTime++ })
	// "noveth": the host veth was deleted by hand.
	if l, err := netlink.LinkByName(noveth.HostIfName); err != nil || netlink.LinkDel(l) != nil {
		t.Fatal("delete veth", err)
	}
	// "half": Create never finished, and crashed before the veth got its
	// alias.
	editRecord(t, cfg, half.ID, func(ep *endpoint.Endpoint) { ep.State = endpoint.StateCreating })
	if l, err := netlink.LinkByName(half.HostIfName); err != nil || netlink.LinkSetAlias(l, "") != nil {
		t.Fatal("clear alias", err)
	}
	// An allocation without a record, and a namespace without one.
	ipam, err := endpoint.OpenIPAM(filepath.Join(cfg.StateDir, "ipam.json"), cfg.PodCIDR4, cfg.PodCIDR6)
	if err != nil {
		t.Fatal(err)
	}
	leaked, err := ipam.Allocate("default/leaked")
	if err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(endpoint.DefaultNetNSDir, cfg.Instance+"-orphan.default")
	if err := endpoint.CreateNetNSForTest(orphan); err != nil {
		t.Fatal(err)
	}

	m2, err := endpoint.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := endpoint.New(cfg); !errors.Is(err, endpoint.ErrLocked) {
		t.Errorf("second manager on one state directory: got %v, want ErrLocked", err)
	}
	rep, err := m2.Restore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	broken := map[endpoint.Key]string{}
	for _, b := range rep.Broken {
		broken[b.Key] = b.Problem
	}
	if len(broken) != 2 || !strings.Contains(broken[noveth.Key()], "is gone") || !strings.Contains(broken[half.Key()], "did not finish") {
		t.Errorf("broken: %v", rep.Broken)
	}
	if len(rep.Running) != 1 || rep.Running[0] != fine.Key() {
		t.Errorf("running: %v", rep.Running)
	}
	if len(rep.Exited) != 1 || rep.Exited[0] != reused.Key() {
		t.Errorf("exited: %v (a PID with another start time is not the process)", rep.Exited)
	}
	if len(rep.Orphans) != 1 || rep.Orphans[0] != orphan {
		t.Errorf("orphans: %v", rep.Orphans)
	}
	if len(rep.Released) != 1 || rep.Released[0].ID != leaked.ID {
		t.Errorf("released: %v, want %v", rep.Released, leaked)
	}
	if got, _ := m2.Get(noveth.Key()); got.State != endpoint.StateBroken || got.Problem == "" {
		t.Errorf("noveth: %+v", got)
	}
	if _, err := m2.Start(ctx, noveth, serveCommand(8080)); !errors.Is(err, endpoint.ErrBroken) {
		t.Errorf("start on a broken endpoint: got %v, want ErrBroken", err)
	}
	// Restore left the orphan and the still-running "reused" process
	// alone; Delete sweeps the namespace, Cleanup the orphan.
	if !endpoint.IsNetNSForTest(orphan) || !processAlive(reused.Process.PID) {
		t.Error("Restore removed something")
	}
	for _, ep := range []endpoint.Endpoint{reused, noveth, half} {
		if err := m2.Delete(ctx, ep.Key()); err != nil {
			t.Errorf("delete %s: %v", ep.Key(), err)
		}
	}
	if processAlive(reused.Process.PID) {
		t.Errorf("Delete left pid %d running in the namespace", reused.Process.PID)
	}
	if _, err := netlink.LinkByName(half.HostIfName); err == nil {
		t.Errorf("Delete left %s, whose peer was in the endpoint's namespace", half.HostIfName)
	}
	if err := m2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if processAlive(fine.Process.PID) {
		t.Errorf("Cleanup left pid %d running", fine.Process.PID)
	}
	assertInstanceGone(t, cfg)
}

func editRecord(t *testing.T, cfg endpoint.Config, id uint16, edit func(*endpoint.Endpoint)) {
	t.Helper()
	path := filepath.Join(cfg.StateDir, "endpoints", fmt.Sprintf("%04x.json", id))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ep endpoint.Endpoint
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatal(err)
	}
	edit(&ep)
	if b, err = json.Marshal(ep); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTwoInstances runs two Managers with different instances and CIDRs
// side by side: their names do not collide, their endpoints reach each
// other (masqueraded, as for any destination outside a pod CIDR), and
// cleaning up one leaves the other working.
func TestTwoInstances(t *testing.T) {
	w := mustWorld(t)
	cfgA, cfgB := testConfig(t, 'x', 5), testConfig(t, 'y', 6)
	ma, mb := mustManager(t, cfgA), mustManager(t, cfgB)
	ctx := context.Background()
	spec := endpoint.Spec{Name: "web"} // the same key in both
	a, err := ma.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mb.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.NetNSPath == b.NetNSPath || a.HostIfName == b.HostIfName {
		t.Fatalf("instances share names: %s %s, %s %s", a.NetNSPath, b.NetNSPath, a.HostIfName, b.HostIfName)
	}
	if a, err = ma.Start(ctx, a, serveCommand(8080)); err != nil {
		t.Fatal(err)
	}
	if b, err = mb.Start(ctx, b, serveCommand(8080)); err != nil {
		t.Fatal(err)
	}
	waitLog(t, ma, a.Key(), "listening")
	waitLog(t, mb, b.Key(), "listening")
	for _, tc := range []struct {
		from       endpoint.Endpoint
		dst        netip.Addr
		wantSource netip.Addr
	}{
		{a, b.IPv4, w.host4}, {a, b.IPv6, w.host6}, {b, a.IPv4, w.host4}, {b, a.IPv6, w.host6},
	} {
		got, err := tcpPing(tc.from.NetNSPath, netip.AddrPortFrom(tc.dst, 8080))
		if err != nil {
			t.Errorf("%s to %v: %v", tc.from.HostIfName, tc.dst, err)
		} else if got != tc.wantSource.String() {
			t.Errorf("%s to %v: seen from %s, want %s", tc.from.HostIfName, tc.dst, got, tc.wantSource)
		}
	}
	if !nftTableExists(t, endpoint.NFTableName(cfgA.Instance)) || !nftTableExists(t, endpoint.NFTableName(cfgB.Instance)) {
		t.Error("each instance needs its own table")
	}
	if err := ma.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	assertInstanceGone(t, cfgA)
	if got, err := mb.Get(b.Key()); err != nil || got.State != endpoint.StateRunning {
		t.Errorf("other instance after cleanup: %+v, %v", got, err)
	}
	if !nftTableExists(t, endpoint.NFTableName(cfgB.Instance)) {
		t.Error("cleanup removed the other instance's table")
	}
	if got, err := tcpPing(b.NetNSPath, netip.AddrPortFrom(w.v4, uint16(w.port))); err != nil || got != w.host4.String() {
		t.Errorf("other instance to the world after cleanup: %s, %v", got, err)
	}
	// The uplink keeps forwarding while the other instance needs it.
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/conf/world0/forwarding"); strings.TrimSpace(string(v)) != "1" {
		t.Errorf("uplink forwarding = %q after the first cleanup, want 1", v)
	}
}

// TestCleanup leaves processes, orphans and a lost state directory
// behind, and expects Cleanup to remove all of it, restoring the
// forwarding setting it turned on.
func TestCleanup(t *testing.T) {
	mustWorld(t)
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/world0/forwarding", []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, 'c', 7)
	m1 := mustManager(t, cfg)
	ctx := context.Background()
	var pids []int
	for _, name := range []string{"one", "two"} {
		ep, err := m1.Create(ctx, endpoint.Spec{Name: name, Namespace: "cleanup"})
		if err != nil {
			t.Fatal(err)
		}
		if ep, err = m1.Start(ctx, ep, serveCommand(8080)); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, ep.Process.PID)
	}
	// Kernel leftovers no record knows: a namespace with a process in
	// it, and a veth with the instance's name.
	orphan := filepath.Join(endpoint.DefaultNetNSDir, cfg.Instance+"-lost.default")
	if err := endpoint.CreateNetNSForTest(orphan); err != nil {
		t.Fatal(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = endpoint.HostIfName(cfg.Instance, 0xfff)
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "lostpeer"}); err != nil {
		t.Fatal(err)
	}
	// The state directory is lost: a Manager with a fresh one, same
	// instance, must still find everything.
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	lost := cfg
	lost.StateDir = filepath.Join(t.TempDir(), "fresh")
	m2, err := endpoint.New(lost)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("pid %d survived Cleanup", pid)
		}
	}
	assertInstanceGone(t, lost)
	if _, err := m2.List(), m2.Cleanup(ctx); !errors.Is(err, endpoint.ErrClosed) {
		t.Errorf("Cleanup twice: %v, want ErrClosed", err)
	}
	// The original Manager's state is still there; its Cleanup (in
	// mustManager) finds nothing left in the kernel and removes it. The
	// forwarding setting it turned on goes back to 0 once no endpoint
	// remains.
	m3, err := endpoint.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m3.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	assertInstanceGone(t, cfg)
	if v, _ := os.ReadFile("/proc/sys/net/ipv4/conf/world0/forwarding"); strings.TrimSpace(string(v)) != "0" {
		t.Errorf("uplink forwarding = %q after cleanup, want the original 0", v)
	}
}

// TestCreateRollsBack makes Create fail half-way (the host interface name
// is taken) and expects no namespace, record or allocation to remain.
func TestCreateRollsBack(t *testing.T) {
	cfg := testConfig(t, 'f', 8)
	m := mustManager(t, cfg)
	ctx := context.Background()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = endpoint.HostIfName(cfg.Instance, 1) // the first id
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "takenpeer"}); err != nil {
		t.Fatal(err)
	}
	dummy, _ := netlink.LinkByName(attrs.Name)
	t.Cleanup(func() { netlink.LinkDel(dummy) })
	spec := endpoint.Spec{Name: "unlucky"}
	if _, err := m.Create(ctx, spec); !errors.Is(err, endpoint.ErrExists) {
		t.Fatalf("create over a taken interface name: got %v, want ErrExists", err)
	}
	nsName := endpoint.NetNSName(cfg.Instance, endpoint.Key{Namespace: "default", Name: spec.Name})
	if _, err := os.Stat(filepath.Join(endpoint.DefaultNetNSDir, nsName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace left after a failed create: %v", err)
	}
	if got := m.List(); len(got) != 0 {
		t.Errorf("endpoints after a failed create: %+v", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(cfg.StateDir, "endpoints")); len(ents) != 0 {
		t.Errorf("records after a failed create: %v", ents)
	}
	if ipam := readIPAM(t, cfg); strings.Contains(ipam, "unlucky") {
		t.Errorf("allocation kept after a failed create:\n%s", ipam)
	}
	if _, err := netlink.LinkByName(attrs.Name); err != nil {
		t.Error("rollback deleted an interface that was not the endpoint's")
	}
	ep, err := m.Create(ctx, spec)
	if err != nil {
		t.Fatalf("create after a failed one: %v", err)
	}
	if ep.ID == 1 {
		t.Error("got the taken id")
	}
	if _, err := m.Create(ctx, endpoint.Spec{Name: "Bad_Name"}); !errors.Is(err, endpoint.ErrInvalid) {
		t.Errorf("invalid spec: %v", err)
	}

	// A namespace already mounted under the endpoint's name (a leftover,
	// or a hash collision of long names) is never shared, and the failed
	// Create leaves it alone.
	taken := filepath.Join(endpoint.DefaultNetNSDir, endpoint.NetNSName(cfg.Instance, endpoint.Key{Namespace: "default", Name: "collide"}))
	if err := endpoint.CreateNetNSForTest(taken); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, endpoint.Spec{Name: "collide"}); !errors.Is(err, endpoint.ErrExists) {
		t.Errorf("create over an existing namespace: got %v, want ErrExists", err)
	}
	if !endpoint.IsNetNSForTest(taken) {
		t.Error("a failed create removed a namespace it did not make")
	}
	if got := m.List(); len(got) != 1 {
		t.Errorf("endpoints after the second failed create: %+v", got)
	}
}
