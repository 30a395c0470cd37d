package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rampartsec/rampart/internal/agent"
	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/cli"
	"github.com/rampartsec/rampart/internal/nodecli"
)

// worldNS creates a network namespace standing for a server outside the
// cluster (198.51.100.2 and 2001:db8:100::2, documentation ranges, behind a
// veth to the host) that echoes on TCP 8080. Only this test's namespaces
// ever carry its traffic.
func worldNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("rtw%d", os.Getpid()%100000)
	hostIf, peerIf := name+"h", name+"p"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.DeleteNamed(name) })
	defer ns.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: peerIf}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(hostIf); err == nil {
			netlink.LinkDel(l)
		}
	})
	host, _ := netlink.LinkByName(hostIf)
	peer, _ := netlink.LinkByName(peerIf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(netlink.LinkSetNsFd(peer, int(ns)))
	for _, a := range []string{"198.51.100.1/24", "2001:db8:100::1/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = 0x02 // IFA_F_NODAD: usable at once
		must(netlink.AddrAdd(host, addr))
	}
	must(netlink.LinkSetUp(host))
	must(os.WriteFile("/proc/sys/net/ipv4/conf/"+hostIf+"/forwarding", []byte("1"), 0o644))
	inNetNS(t, "/run/netns/"+name, func() {
		h, err := netlink.NewHandle()
		must(err)
		defer h.Close()
		p, err := h.LinkByName(peerIf)
		must(err)
		for _, a := range []string{"198.51.100.2/24", "2001:db8:100::2/64"} {
			addr, _ := netlink.ParseAddr(a)
			addr.Flags = 0x02
			must(h.AddrAdd(p, addr))
		}
		must(h.LinkSetUp(p))
		lo, _ := h.LinkByName("lo")
		must(h.LinkSetUp(lo))
		l, err := net.Listen("tcp", ":8080")
		must(err)
		t.Cleanup(func() { l.Close() })
		go acceptAndEcho(l)
	})
	// Never let a probe leave the machine: if the world's addresses are
	// not routed to this veth, stop here.
	for _, a := range []string{"198.51.100.2", "2001:db8:100::2"} {
		routes, err := netlink.RouteGet(net.ParseIP(a))
		if err != nil || len(routes) == 0 || routes[0].LinkIndex != host.Attrs().Index {
			t.Fatalf("%s is not routed to the test's world veth (%v, %v)", a, routes, err)
		}
	}
	return "/run/netns/" + name
}

func acceptAndEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1024)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write(buf[:n])
			}
		}()
	}
}

// TestNodeWorldHostAndCLI exercises peers outside the cluster (CIDR rules,
// ipBlock with except, entities, masquerading), the host identity, the CLI
// against a running node, metrics, and a cleanup that leaves nothing.
func TestNodeWorldHostAndCLI(t *testing.T) {
	needRoot(t)
	// The two node tests run side by side: two nodes with their own state
	// directories, sockets and pod CIDRs on one machine.
	t.Parallel()
	worldNS(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	n := startNode(t, state, "10.232.0.0/24", "fd00:232::/64")
	cleaned := false
	t.Cleanup(func() {
		n.kill()
		if !cleaned {
			agentCleanup(state)
		}
	})
	n.apply(nsYAML)
	server := n.run("server", "shop", map[string]string{"app": "server"}, "server")
	client := n.run("client", "shop", map[string]string{"app": "client"}, "sleep")
	other := n.run("other", "shop", map[string]string{"app": "other"}, "sleep")
	waitServing(t, n, server)
	clientNS, otherNS, serverNS := nsPathOf(t, n, client), nsPathOf(t, n, other), nsPathOf(t, n, server)

	t.Run("endpoints reach the world through masquerading", func(t *testing.T) {
		for _, ns := range []string{clientNS, otherNS, serverNS} {
			if !probe(t, ns, "tcp", "198.51.100.2", 8080) {
				t.Errorf("%s cannot reach the world server", ns)
			}
		}
	})

	n.apply(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-to-world, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toCIDR: [198.51.100.0/24]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: other-cluster-only, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: other}}
  egress:
  - toEntities: [cluster]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.2/32]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
`)
	t.Run("toCIDR, toEntities and ipBlock except against the world", func(t *testing.T) {
		if !probe(t, clientNS, "tcp", "198.51.100.2", 8080) {
			t.Error("toCIDR 198.51.100.0/24 does not let client reach the world server")
		}
		if probe(t, otherNS, "tcp", "198.51.100.2", 8080) {
			t.Error("toEntities [cluster] let other reach the world")
		}
		if !probe(t, otherNS, "tcp", server.IPv4, 8080) {
			// other's egress to the cluster is allowed, but server's
			// ingress only admits client: so this must fail too.
		} else {
			t.Error("server admitted other")
		}
		if probe(t, serverNS, "tcp", "198.51.100.2", 8080) {
			t.Error("ipBlock except 198.51.100.2/32 let server reach it")
		}
	})
	t.Run("the host carries the host identity", func(t *testing.T) {
		if probeHere("tcp", server.IPv4, 8080) {
			t.Error("the host reached server, which admits only client")
		}
		n.apply(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-from-host, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEntities: [host]
`)
		if !probeHere("tcp", server.IPv4, 8080) {
			t.Error("fromEntities [host] does not admit the host")
		}
	})

	sock := n.socket
	runCLI := func(stdin string, args ...string) (string, string, int) {
		var out, errw bytes.Buffer
		code := cli.Main(append([]string{"--socket", sock}, args...), strings.NewReader(stdin), &out, &errw)
		return out.String(), errw.String(), code
	}
	t.Run("cli against the node", func(t *testing.T) {
		out, errs, code := runCLI("", "endpoint", "list")
		if code != 0 || !strings.Contains(out, "shop/server") || !strings.Contains(out, "enforced") {
			t.Errorf("endpoint list = %d\n%s%s", code, out, errs)
		}
		out, errs, code = runCLI("", "get", "cnp", "-n", "shop")
		if code != 0 || !strings.Contains(out, "client-to-world") {
			t.Errorf("get cnp = %d\n%s%s", code, out, errs)
		}
		out, errs, code = runCLI("", "observe", "--verdict", "DROPPED", "--pod", "other", "-o", "json")
		if code != 0 || !strings.Contains(out, `"verdict":"DROPPED"`) {
			t.Errorf("observe = %d\n%s%s", code, out, errs)
		}
		var fl api.Flow
		if line, _, _ := strings.Cut(out, "\n"); json.Unmarshal([]byte(line), &fl) != nil || fl.Source.Identity == 0 {
			t.Errorf("observe JSON line %q lacks identities", line)
		}
		bad := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: shop}\nspec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 70000}]\n"
		_, errs, code = runCLI(bad, "apply", "-f", "-")
		if code != 1 || !strings.Contains(errs, "-:7: spec.ingress[0].ports[0].port: port 70000 out of range") {
			t.Errorf("apply of a bad policy = %d\n%s", code, errs)
		}
		if _, _, code := runCLI("", "get", "netpol", "bad", "-n", "shop"); code == 0 {
			t.Error("a rejected policy was stored")
		}
		out, errs, code = runCLI("", "delete", "cnp", "server-from-host", "-n", "shop")
		if code != 0 || probeHere("tcp", server.IPv4, 8080) {
			t.Errorf("delete cnp = %d (%s%s), or the host still reaches server", code, out, errs)
		}
		out, _, code = runCLI("", "status")
		if code != 0 || !strings.Contains(out, "endpoints   3") && !strings.Contains(out, "endpoints") {
			t.Errorf("status = %d\n%s", code, out)
		}
	})
	t.Run("metrics on loopback", func(t *testing.T) {
		resp, err := httpGet("http://" + n.metrics + "/metrics")
		if err != nil || !strings.Contains(resp, "rampart_flows_total") || !strings.Contains(resp, "rampart_endpoints 3") {
			t.Errorf("metrics: %v\n%.400s", err, resp)
		}
	})

	t.Run("down --cleanup leaves nothing behind", func(t *testing.T) {
		n.kill()
		// rampart down hands over to rampart-node; run the daemon's
		// command line directly.
		var outb, errb bytes.Buffer
		code := nodecli.Main([]string{"down", "--cleanup", "--state-dir", state}, strings.NewReader(""), &outb, &errb)
		out, errs := outb.String(), errb.String()
		if code != 0 {
			t.Fatalf("down --cleanup = %d\n%s%s", code, out, errs)
		}
		cleaned = true
		inst := agent.Instance(state)
		if m, _ := filepath.Glob("/run/netns/" + inst + "-*"); len(m) > 0 {
			t.Errorf("network namespaces left: %v", m)
		}
		links, _ := netlink.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, "rp"+inst) {
				t.Errorf("interface left: %s", l.Attrs().Name)
			}
		}
		if _, err := os.Stat(agent.PinDir(state)); !os.IsNotExist(err) {
			t.Errorf("pins left in %s", agent.PinDir(state))
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Errorf("state directory left")
		}
	})
	_ = context.Background
}
