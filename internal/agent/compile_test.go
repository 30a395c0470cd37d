package agent_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/rampartsec/rampart/internal/agent"
	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/resource"
)

// kernelLookup models the datapath's documented lookup (docs/datapath.md)
// over compiled rows: the peer's identity, its "any" CIDR class, its
// "world" CIDR class when the peer is world, and the wildcard identity,
// each with the exact protocol and with "any protocol", longest port prefix
// first; deny beats redirect beats allow beats the direction's default.
func kernelLookup(c *agent.Compiled, dir datapath.Direction, peer identity.ID, addr netip.Addr, proto uint8, port uint16) bool {
	var class datapath.CIDRClass
	best := -1
	for _, e := range c.CIDR {
		if e.Direction == dir && addr.IsValid() && e.Prefix.Contains(addr) && e.Prefix.Bits() > best {
			best, class = e.Prefix.Bits(), e.Class
		}
	}
	peers := []datapath.Identity{datapath.Identity(peer), datapath.IdentityAny}
	if class.Any != 0 {
		p, _ := datapath.CIDRClassPeer(class.Any)
		peers = append(peers, p)
	}
	isWorld := peer == identity.World || peer >= identity.MinCIDR
	if class.World != 0 && isWorld {
		p, _ := datapath.CIDRClassPeer(class.World)
		peers = append(peers, p)
	}
	verdict := datapath.VerdictNone
	for _, pe := range peers {
		for _, pr := range []uint8{proto, datapath.ProtoAny} {
			var hit *datapath.PolicyEntry
			for i := range c.Policy {
				e := &c.Policy[i]
				k := e.Key
				if k.Direction != dir || k.Peer != pe || k.Proto != pr || !k.Port.Contains(port) {
					continue
				}
				if pr == datapath.ProtoAny && k.Port.Len > 0 && proto != datapath.ProtoTCP && proto != datapath.ProtoUDP && proto != datapath.ProtoSCTP {
					continue
				}
				if hit == nil || k.Port.Len > hit.Key.Port.Len {
					hit = e
				}
			}
			if hit != nil && precedence(hit.Value.Verdict) > precedence(verdict) {
				verdict = hit.Value.Verdict
			}
		}
	}
	switch verdict {
	case datapath.VerdictDeny:
		return false
	case datapath.VerdictAllow, datapath.VerdictRedirect:
		return true
	}
	if dir == datapath.Ingress {
		return !c.Config.IngressEnforced
	}
	return !c.Config.EgressEnforced
}

func precedence(v datapath.Verdict) int {
	return map[datapath.Verdict]int{datapath.VerdictNone: 0, datapath.VerdictAllow: 1, datapath.VerdictRedirect: 2, datapath.VerdictDeny: 3}[v]
}

const cluster = `
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {containers: [{name: c, image: i, ports: [{name: web, containerPort: 8080}]}]}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {containers: [{name: c, image: i, ports: [{name: web, containerPort: 9090}]}]}
status: {podIP: 10.0.0.2}
---
`

// TestCompileMatchesTables checks, over many peers, addresses, protocols
// and ports, that the compiled kernel rows decide exactly as the verdict
// tables (and so as policy.Decide) do. It covers CIDR classes with
// excepts, overlapping ipBlock and Cilium CIDR rules, deny precedence over
// port ranges, ICMP and named ports.
func TestCompileMatchesTables(t *testing.T) {
	cases := map[string]string{
		"ipblock with except and cilium cidr overlap": `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/24, 10.9.0.0/16]}}]
    ports: [{port: 80}, {port: 1000, endPort: 2000, protocol: UDP}]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [192.0.2.0/24]}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromCIDRSet: [{cidr: 10.9.0.0/16, except: [10.9.9.0/24]}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  egressDeny:
  - toCIDR: [198.51.100.0/24]
    toPorts: [{ports: [{port: "0", protocol: TCP}]}]
`,
		"deny over a port range hides nothing": `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "web", protocol: TCP}]}]
  - icmps: [{fields: [{type: 8}]}]
  - toPorts: [{ports: [{port: "100", protocol: TCP}]}]
  ingressDeny:
  - fromEntities: [all]
    toPorts: [{ports: [{port: "0", endPort: 1023, protocol: TCP}]}]
  egress:
  - toEndpoints: [{matchLabels: {app: b}}]
    toPorts: [{ports: [{port: "web"}]}]
  - toEntities: [world]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules: {http: [{method: GET}]}
`,
	}
	peers := []struct {
		id   identity.ID
		addr string
	}{
		{0, "10.0.0.2"}, // pod b; the real identity is filled in below
		{identity.World, "10.0.0.9"}, {identity.World, "10.1.2.3"}, {identity.World, "10.9.1.1"},
		{identity.World, "10.9.9.9"}, {identity.World, "192.0.2.7"}, {identity.World, "198.51.100.5"},
		{identity.World, "203.0.113.1"}, {identity.Host, "10.0.0.254"}, {identity.World, "2001:db8::1"},
	}
	protos := []uint8{datapath.ProtoTCP, datapath.ProtoUDP, datapath.ProtoSCTP, datapath.ProtoICMP}
	ports := []uint16{0, 8, 79, 80, 81, 100, 443, 1000, 1500, 2000, 2001, 8080, 9090}
	for name, pols := range cases {
		t.Run(name, func(t *testing.T) {
			objs, err := resource.DecodeBytes("c.yaml", []byte(cluster+pols))
			if err != nil {
				t.Fatal(err)
			}
			repo, err := policy.Build(context.Background(), objs, nil)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := repo.Lookup("x/a")
			b, _ := repo.Lookup("x/b")
			in, eg := repo.Table(a, policy.Ingress), repo.Table(a, policy.Egress)
			c, err := agent.Compile(1, a.Identity.ID, in, eg, agent.NewRuleIDs(), 15001)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, p := range peers {
				pid := p.id
				ident := identity.Reserved(pid)
				if pid == 0 {
					pid, ident = b.Identity.ID, b.Identity
				}
				addr := netip.MustParseAddr(p.addr)
				for _, proto := range protos {
					for _, port := range ports {
						if proto == datapath.ProtoICMP && port > 255 {
							continue
						}
						kport := port
						if proto == datapath.ProtoICMP {
							kport = port << 8
						}
						for _, d := range []struct {
							kd datapath.Direction
							t  *policy.Table
						}{{datapath.Ingress, in}, {datapath.Egress, eg}} {
							want, _ := d.t.Lookup(policy.PeerInfo{Identity: ident, Addr: addr}, policy.Protocol(proto), port)
							got := kernelLookup(c, d.kd, pid, addr, proto, kport)
							checked++
							if got != want {
								t.Errorf("%v from/to %s (identity %d) proto %d port %d: kernel rows say %v, table says %v",
									d.kd, p.addr, pid, proto, port, got, want)
							}
						}
					}
				}
			}
			if checked < 500 {
				t.Fatalf("only %d flows checked", checked)
			}
			t.Logf("%d flows, %d policy rows, %d CIDR rows", checked, len(c.Policy), len(c.CIDR))
		})
	}
}
