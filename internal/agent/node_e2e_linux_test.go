package agent_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/rampartsec/rampart/internal/api"
)

const nsYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
`

const allowClientHTTP = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-from-client, namespace: shop}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
    ports:
    - port: http
`

const denyClientHTTP = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-client, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
`

type check struct {
	proto string
	port  int
	v6    bool
	want  bool
}

// expect probes from the client's namespace to the server and fails on any
// verdict that differs from want.
func expect(t *testing.T, client, server api.Endpoint, nsPath string, checks []check) {
	t.Helper()
	for _, c := range checks {
		addr := server.IPv4
		if c.v6 {
			addr = server.IPv6
		}
		if got := probe(t, nsPath, c.proto, addr, c.port); got != c.want {
			t.Errorf("%s %s port %d from %s/%s: reached = %v, want %v", c.proto, addr, c.port, client.Namespace, client.Name, got, c.want)
		}
	}
}

// TestNodeEndToEnd runs a node, two workloads and policies through the
// real datapath: TCP, UDP and ICMP over IPv4 and IPv6, allowed and dropped
// as NetworkPolicy and CiliumNetworkPolicy say, visible in flows, with
// audit mode, policy update and delete, and a node restart that keeps
// enforcement and established connections.
func TestNodeEndToEnd(t *testing.T) {
	needRoot(t)
	// The two node tests run side by side: two nodes with their own state
	// directories, sockets and pod CIDRs on one machine.
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, dir+"/state", "10.231.0.0/24", "fd00:231::/64")
	t.Cleanup(func() {
		n.kill()
		if _, err := agentCleanup(dir + "/state"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n.apply(nsYAML)
	server := n.run("server", "shop", map[string]string{"app": "server"}, "server")
	client := n.run("client", "shop", map[string]string{"app": "client"}, "sleep")
	other := n.run("other", "shop", map[string]string{"app": "other"}, "sleep")
	clientNS := nsPathOf(t, n, client)
	otherNS := nsPathOf(t, n, other)
	waitServing(t, n, server)

	all := func(want bool) []check {
		var cs []check
		for _, v6 := range []bool{false, true} {
			cs = append(cs, check{"tcp", 8080, v6, want}, check{"udp", 8081, v6, want}, check{"icmp", 0, v6, want})
		}
		return cs
	}
	t.Run("no policy: all allowed", func(t *testing.T) { expect(t, client, server, clientNS, all(true)) })
	t.Run("traffic between endpoints is delivered past the host", func(t *testing.T) {
		// Local delivery (the node's default) puts the client's packets
		// straight into the server's namespace: the client's host veth
		// receives them, the server's never transmits them.
		cli0, srv0 := hostVethStats(t, client.IPv4), hostVethStats(t, server.IPv4)
		for range 5 {
			expect(t, client, server, clientNS, []check{{"tcp", 8080, false, true}, {"tcp", 8080, true, true}})
		}
		cli1, srv1 := hostVethStats(t, client.IPv4), hostVethStats(t, server.IPv4)
		rx, tx := cli1.RxPackets-cli0.RxPackets, srv1.TxPackets-srv0.TxPackets
		if rx < 20 || tx*4 > rx {
			t.Errorf("client's host veth received %d packets, server's transmitted %d: want most of them delivered past the host", rx, tx)
		}
	})

	n.apply(allowClientHTTP)
	t.Run("NetworkPolicy allows only client to http", func(t *testing.T) {
		expect(t, client, server, clientNS, []check{
			{"tcp", 8080, false, true}, {"tcp", 8080, true, true},
			{"udp", 8081, false, false}, {"udp", 8081, true, false},
			{"icmp", 0, false, false}, {"icmp", 0, true, false},
		})
		expect(t, other, server, otherNS, []check{{"tcp", 8080, false, false}, {"tcp", 8080, true, false}})
	})
	t.Run("drops are visible with the deciding policy", func(t *testing.T) {
		flows := collectFlows(t, n, api.FlowFilter{Verdict: "DROPPED", Pod: "server"})
		if !hasFlow(flows, "UDP", "shop/client", "shop/server") {
			t.Errorf("no DROPPED UDP flow from shop/client to shop/server in %d flows", len(flows))
		}
		allowed := collectFlows(t, n, api.FlowFilter{Verdict: "FORWARDED", Pod: "server"})
		found := false
		for _, f := range allowed {
			if f.Protocol == "TCP" && strings.Contains(f.Policy, "NetworkPolicy/shop/server-from-client") {
				found = true
			}
		}
		if !found {
			t.Errorf("no FORWARDED TCP flow naming NetworkPolicy/shop/server-from-client in %d flows", len(allowed))
		}
	})

	n.apply(denyClientHTTP)
	t.Run("Cilium deny wins over the NetworkPolicy allow", func(t *testing.T) {
		expect(t, client, server, clientNS, []check{{"tcp", 8080, false, false}, {"tcp", 8080, true, false}})
	})
	n.delete(denyClientHTTP)
	t.Run("deleting the deny restores the allow", func(t *testing.T) {
		expect(t, client, server, clientNS, []check{{"tcp", 8080, false, true}})
	})

	n.apply(`
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {policy.rampart.io/mode: audit}}
`)
	t.Run("audit mode passes would-be drops and reports them", func(t *testing.T) {
		expect(t, client, server, clientNS, []check{{"udp", 8081, false, true}, {"icmp", 0, true, true}})
		flows := collectFlows(t, n, api.FlowFilter{Verdict: "AUDIT", Pod: "server"})
		if !hasFlow(flows, "UDP", "shop/client", "shop/server") {
			t.Errorf("no AUDIT UDP flow in %d flows", len(flows))
		}
	})
	n.apply(nsYAML)

	t.Run("restart keeps enforcement and established connections", func(t *testing.T) {
		var conn interface {
			Close() error
		}
		var established func() bool
		inNetNS(t, clientNS, func() {
			c, err := dialTCP(server.IPv4, 8080)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			conn = c
			established = func() bool {
				var ok bool
				inNetNS(t, clientNS, func() { ok = echo(c) })
				return ok
			}
		})
		defer conn.Close()
		if !established() {
			t.Fatal("established connection does not work before the restart")
		}
		n.kill()
		// While the node is down, the pinned datapath keeps deciding.
		expect(t, client, server, clientNS, []check{{"udp", 8081, false, false}, {"tcp", 8080, true, true}})
		expect(t, other, server, otherNS, []check{{"tcp", 8080, false, false}})
		if !established() {
			t.Error("established connection broke while the node was down")
		}
		n.start()
		expect(t, client, server, clientNS, []check{{"udp", 8081, false, false}, {"tcp", 8080, false, true}})
		if !established() {
			t.Error("established connection broke across the restart")
		}
		eps, err := n.c.Endpoints(context.Background())
		if err != nil || len(eps) != 3 {
			t.Fatalf("endpoints after restart = %d, %v; want 3 re-adopted", len(eps), err)
		}
	})

	n.delete(allowClientHTTP)
	t.Run("deleting the policy opens the endpoint again", func(t *testing.T) {
		expect(t, client, server, clientNS, all(true))
	})
	_ = time.Second
}

// hostVethStats returns the counters of the host interface routing to an
// endpoint's address: its host-side veth.
func hostVethStats(t *testing.T, ip string) netlink.LinkStatistics {
	t.Helper()
	routes, err := netlink.RouteGet(net.ParseIP(ip))
	if err != nil || len(routes) == 0 {
		t.Fatalf("route to %s: %v", ip, err)
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		t.Fatalf("link of the route to %s: %v", ip, err)
	}
	return *l.Attrs().Statistics
}
