package proxy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/netnsexec"
	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/testenv"
)

// Network namespaces of these tests are named rpxt-<pid in base 36>-<n>-<role>
// under /run/netns, so that concurrent test binaries never collide and
// TestMain can remove what a killed run left behind.
const (
	nsPrefix = "rpxt-"
	nsDir    = "/run/netns"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		sweepStaleNetns()
	}
	os.Exit(m.Run())
}

// sweepStaleNetns unmounts namespaces of earlier test processes that are
// no longer running (a timeout or a crash skipped their cleanups).
func sweepStaleNetns() {
	ents, _ := os.ReadDir(nsDir)
	for _, de := range ents {
		rest, ok := strings.CutPrefix(de.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.ParseInt(pidStr, 36, 64)
		if err != nil || pid == int64(os.Getpid()) {
			continue
		}
		if err := syscall.Kill(int(pid), 0); err == nil || err == syscall.EPERM {
			continue // still running
		}
		p := filepath.Join(nsDir, de.Name())
		fmt.Fprintln(os.Stderr, "removing leftover network namespace", p)
		unix.Unmount(p, unix.MNT_DETACH)
		os.Remove(p)
	}
}

// requirePrivileged skips a test that needs root, but only outside CI: in
// CI a missing privilege is a broken runner, and a skip would hide that
// the proxy was never tested.
func requirePrivileged(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "CAP_NET_ADMIN, CAP_SYS_ADMIN")
}

var nsCounter atomic.Int64

// member is a network namespace on the test bridge, like a pod: eth0 with
// 10.99.0.<n>/24 and fd00:99::<n>/64.
type member struct {
	role string
	path string
	ip4  netip.Addr
	ip6  netip.Addr
}

func (m *member) workload() proxy.Workload {
	return proxy.Workload{Namespace: "test", Name: m.role, ServiceAccount: m.role + "-sa", NetnsPath: m.path, IPs: []netip.Addr{m.ip4, m.ip6}}
}

// dialer returns a DialContext that connects from inside m, as any
// program running in the pod would: nothing proxy-aware.
func (m *member) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = netnsexec.DoPath(m.path, func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// httpClient is a plain HTTP client inside m, without keep-alive so each
// request is a new connection (and a new capture).
func (m *member) httpClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: m.dialer(), DisableKeepAlives: true},
	}
}

// listen opens a TCP listener inside m.
func (m *member) listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := netnsexec.DoPath(m.path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// mustTopology creates a hub namespace with a bridge and one member
// namespace per role on it, and removes them all when the test ends.
func mustTopology(t testing.TB, roles ...string) map[string]*member {
	t.Helper()
	requirePrivileged(t)
	base := nsPrefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.FormatInt(nsCounter.Add(1), 10) + "-"
	hub := mustNetns(t, base+"hub")
	hh, err := netlink.NewHandleAt(hub)
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	if err := hh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	br, err := hh.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hh.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	out := map[string]*member{}
	for i, role := range roles {
		ns := mustNetns(t, base+role)
		m := &member{
			role: role,
			path: filepath.Join(nsDir, base+role),
			ip4:  netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 2)}),
			ip6:  netip.MustParseAddr(fmt.Sprintf("fd00:99::%x", i+2)),
		}
		hostSide := fmt.Sprintf("p%d", i)
		if err := hh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostSide, MasterIndex: br.Attrs().Index},
			PeerName: "eth0", PeerNamespace: netlink.NsFd(ns)}); err != nil {
			t.Fatalf("veth for %s: %v", role, err)
		}
		hl, err := hh.LinkByName(hostSide)
		if err != nil {
			t.Fatal(err)
		}
		if err := hh.LinkSetUp(hl); err != nil {
			t.Fatal(err)
		}
		mh, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"lo", "eth0"} {
			l, err := mh.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if name == "eth0" {
				for _, a := range []netip.Prefix{netip.PrefixFrom(m.ip4, 24), netip.PrefixFrom(m.ip6, 64)} {
					addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}, Flags: unix.IFA_F_NODAD}
					if err := mh.AddrAdd(l, addr); err != nil {
						t.Fatalf("address %s on %s: %v", a, role, err)
					}
				}
			}
			if err := mh.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		mh.Close()
		out[role] = m
	}
	return out
}

// mustNetns creates the named namespace /run/netns/name and deletes it
// when the test ends.
func mustNetns(t testing.TB, name string) netns.NsHandle {
	t.Helper()
	var (
		ns  netns.NsHandle
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, gerr := netns.Get()
		if gerr != nil {
			err = gerr
			return
		}
		defer orig.Close()
		ns, err = netns.NewNamed(name) // switches this thread
		if serr := netns.Set(orig); serr != nil {
			err = fmt.Errorf("return to the original namespace: %w", serr)
			return // the thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
	}()
	<-done
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	return ns
}

// hasProxyTable reports whether the proxy's nftables table exists in m.
func hasProxyTable(t testing.TB, m *member) bool {
	t.Helper()
	ns, err := netns.GetFromPath(m.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == proxy.NFTableName {
			return true
		}
	}
	return false
}

// transparentRules counts m's policy rules that route TransparentMark
// to TransparentTable, over both families.
func transparentRules(t testing.TB, m *member) int {
	t.Helper()
	ns, err := netns.GetFromPath(m.path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rules, err := h.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rules {
		if r.Mark == proxy.TransparentMark && r.Table == proxy.TransparentTable {
			n++
		}
	}
	return n
}
