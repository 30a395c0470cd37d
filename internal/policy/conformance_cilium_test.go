package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
)

// ciliumCases is the CiliumNetworkPolicy conformance table, written from
// Cilium's policy language documentation: deny precedence over any allow,
// default deny per direction and enableDefaultDeny, namespace confinement
// of selectors, cross-namespace selectors, entities and L3/L4 wildcards.
var ciliumCases = []reachCase{
	{
		name: "ingress allow from endpoints in the policy's namespace",
		policies: cnp("x", "from-b", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- fromEndpoints:
  - matchLabels: {pod: b}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("x/b", "x/a", true),
	},
	{
		name: "empty fromEndpoints selector is confined to the namespace",
		policies: cnp("x", "from-ns", `
endpointSelector: {}
ingress:
- fromEndpoints:
  - {}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("y/*", "x/*", false).set("z/*", "x/*", false),
	},
	{
		name: "cross-namespace selector with k8s:io.kubernetes.pod.namespace",
		policies: cnp("x", "from-y-b", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- fromEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: y
      pod: b
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/b", "x/a", true),
	},
	{
		name: "selector on namespace labels",
		policies: cnp("x", "from-ns-z", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- fromEndpoints:
  - matchLabels:
      io.cilium.k8s.namespace.labels.ns: z
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("z/*", "x/a", true),
	},
	{
		name: "'- {}' ingress rule enables default deny and allows nothing",
		policies: cnp("x", "deny", `
endpointSelector: {}
ingress:
- {}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false),
	},
	{
		name: "L4-only rule allows every peer on that port",
		policies: cnp("x", "l4", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- toPorts:
  - ports: [{port: "80", protocol: TCP}]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "L4-only rule: other ports denied",
		policies: cnp("x", "l4", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- toPorts:
  - ports: [{port: "80", protocol: TCP}]
`),
		port: 81, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "protocol ANY covers UDP",
		policies: cnp("x", "any", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- toPorts:
  - ports: [{port: "81"}]
`),
		port: 81, proto: policy.UDP,
		want: newReach(true),
	},
	{
		name: "port range with endPort",
		policies: cnp("x", "range", `
endpointSelector:
  matchLabels: {pod: a}
egress:
- toPorts:
  - ports: [{port: "80", endPort: 81, protocol: SCTP}]
`),
		port: 81, proto: policy.SCTP,
		want: newReach(true),
	},
	{
		name: "named port in toPorts",
		policies: cnp("x", "named", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- toPorts:
  - ports: [{port: serve-81-tcp, protocol: TCP}]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "deny wins over a CNP allow",
		policies: cnp("x", "allow-all", `
endpointSelector: {}
ingress:
- fromEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: y
`) + cnp("x", "deny-y-b", `
endpointSelector: {}
ingressDeny:
- fromEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: y
      pod: b
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false).set("y/a", "x/*", true).set("y/c", "x/*", true),
	},
	{
		name: "deny wins over a NetworkPolicy allow",
		policies: np("x", "allow-all", `
podSelector: {}
ingress:
- {}
`) + cnp("x", "deny-z", `
endpointSelector: {}
ingressDeny:
- fromEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: z
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("z/*", "x/*", false),
	},
	{
		name: "deny on one port only",
		policies: cnp("x", "deny-80", `
endpointSelector:
  matchLabels: {pod: a}
ingressDeny:
- toPorts:
  - ports: [{port: "80", protocol: TCP}]
`),
		port: 81, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "enableDefaultDeny false: deny applies, nothing else isolated",
		policies: cnp("x", "deny-80", `
endpointSelector:
  matchLabels: {pod: a}
enableDefaultDeny:
  ingress: false
ingressDeny:
- toPorts:
  - ports: [{port: "80", protocol: TCP}]
`),
		port: 81, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "enableDefaultDeny false: allow rule does not isolate",
		policies: cnp("x", "add-only", `
endpointSelector: {}
enableDefaultDeny:
  egress: false
egress:
- toEndpoints:
  - matchLabels: {pod: b}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "egress deny to another namespace",
		policies: cnp("x", "egress-deny", `
endpointSelector: {}
egressDeny:
- toEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: z
`),
		port: 80, proto: policy.UDP,
		want: newReach(true).set("x/*", "*", false),
	},
	{
		name: "egress deny with an allow for the rest",
		policies: cnp("x", "egress", `
endpointSelector: {}
egress:
- toEntities: [all]
egressDeny:
- toEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: z
`),
		port: 80, proto: policy.UDP,
		want: newReach(true).set("x/*", "z/*", false),
	},
	{
		name: "clusterwide policy selects every namespace",
		policies: cnp("", "deny-c", `
endpointSelector:
  matchLabels: {pod: c}
ingress:
- fromEndpoints:
  - matchLabels: {pod: a}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "*/c", false).set("*", "x/c", false).set("*", "y/c", false).set("*", "z/c", false).
			set("x/a", "x/c", true).set("y/a", "x/c", true).set("z/a", "x/c", true).
			set("x/a", "y/c", true).set("y/a", "y/c", true).set("z/a", "y/c", true).
			set("x/a", "z/c", true).set("y/a", "z/c", true).set("z/a", "z/c", true),
	},
	{
		name: "cluster entity allows every pod",
		policies: cnp("x", "cluster", `
endpointSelector: {}
ingress:
- fromEntities: [cluster]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "world entity does not allow pods",
		policies: cnp("x", "world", `
endpointSelector: {}
ingress:
- fromEntities: [world]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false),
	},
	{
		name: "CIDR rules do not match cluster endpoints",
		policies: cnp("x", "cidr", `
endpointSelector: {}
egress:
- toCIDR: [10.244.0.0/16]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/*", "*", false),
	},
	{
		name: "ICMP echo allowed by icmps",
		policies: cnp("x", "icmp", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- icmps:
  - fields:
    - {type: EchoRequest, family: IPv4}
`),
		port: 8, proto: policy.ICMP,
		want: newReach(true),
	},
	{
		name: "icmps does not allow TCP",
		policies: cnp("x", "icmp", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- icmps:
  - fields:
    - {type: 8}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "L7 rules allow the port at L4",
		policies: cnp("x", "http", `
endpointSelector:
  matchLabels: {pod: a}
ingress:
- fromEndpoints:
  - {}
  toPorts:
  - ports: [{port: "80", protocol: TCP}]
    rules:
      http:
      - {method: GET, path: "/public/.*"}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("y/*", "x/a", false).set("z/*", "x/a", false),
	},
	{
		name: "toFQDNs allows nothing until the DNS proxy exists",
		policies: cnp("x", "fqdn", `
endpointSelector:
  matchLabels: {pod: a}
egress:
- toFQDNs:
  - matchName: example.com
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false),
	},
}

func TestCiliumConformance(t *testing.T) {
	for _, tc := range ciliumCases {
		t.Run(tc.name, func(t *testing.T) {
			checkReach(t, mustRepo(t, tc.policies), tc.port, tc.proto, tc.want)
		})
	}
}

// TestExternalPeers covers peers that are not pods: world addresses, CIDR
// rules with except, entities and the host.
func TestExternalPeers(t *testing.T) {
	world := func(addr string) policy.Side {
		return policy.Side{Identity: identity.Reserved(identity.World), Addr: netip.MustParseAddr(addr)}
	}
	host := policy.Side{Identity: identity.Reserved(identity.Host)}
	tests := []struct {
		name     string
		policies string
		from, to string // pod refs, "host" or an address
		port     uint16
		proto    policy.Protocol
		want     bool
	}{
		{"toCIDR allows a world address", cnp("x", "cidr", "endpointSelector: {}\negress:\n- toCIDR: [198.51.100.0/24]\n"),
			"x/a", "198.51.100.7", 443, policy.TCP, true},
		{"toCIDR: other world addresses denied", cnp("x", "cidr", "endpointSelector: {}\negress:\n- toCIDR: [198.51.100.0/24]\n"),
			"x/a", "203.0.113.7", 443, policy.TCP, false},
		{"toCIDRSet except carves a hole", cnp("x", "cidrset", "endpointSelector: {}\negress:\n- toCIDRSet:\n  - cidr: 198.51.100.0/24\n    except: [198.51.100.0/28]\n"),
			"x/a", "198.51.100.7", 443, policy.TCP, false},
		{"toCIDRSet outside the except", cnp("x", "cidrset", "endpointSelector: {}\negress:\n- toCIDRSet:\n  - cidr: 198.51.100.0/24\n    except: [198.51.100.0/28]\n"),
			"x/a", "198.51.100.77", 443, policy.TCP, true},
		{"world entity allows any world address", cnp("x", "world", "endpointSelector: {}\negress:\n- toEntities: [world]\n"),
			"x/a", "203.0.113.7", 53, policy.UDP, true},
		{"cluster entity does not allow world", cnp("x", "cluster", "endpointSelector: {}\negress:\n- toEntities: [cluster]\n"),
			"x/a", "203.0.113.7", 53, policy.UDP, false},
		{"world-ipv6 entity allows only IPv6 world", cnp("x", "w6", "endpointSelector: {}\negress:\n- toEntities: [world-ipv6]\n"),
			"x/a", "2001:db8::1", 80, policy.TCP, true},
		{"world-ipv6 entity denies IPv4 world", cnp("x", "w6", "endpointSelector: {}\negress:\n- toEntities: [world-ipv6]\n"),
			"x/a", "203.0.113.7", 80, policy.TCP, false},
		{"host entity allows the host", cnp("x", "host", "endpointSelector: {}\ningress:\n- fromEntities: [host]\n"),
			"host", "x/a", 80, policy.TCP, true},
		{"host is denied under default deny", cnp("x", "deny", "endpointSelector: {}\ningress:\n- {}\n"),
			"host", "x/a", 80, policy.TCP, false},
		{"fromEndpoints with reserved:host", cnp("x", "rh", "endpointSelector: {}\ningress:\n- fromEndpoints:\n  - matchLabels: {reserved:host: \"\"}\n"),
			"host", "x/a", 80, policy.TCP, true},
		{"NetworkPolicy ipBlock allows a world address", np("x", "ipb", "podSelector: {}\ningress:\n- from:\n  - ipBlock: {cidr: 0.0.0.0/0, except: [192.0.2.0/24]}\n"),
			"203.0.113.7", "x/a", 80, policy.TCP, true},
		{"NetworkPolicy ipBlock except", np("x", "ipb", "podSelector: {}\ningress:\n- from:\n  - ipBlock: {cidr: 0.0.0.0/0, except: [192.0.2.0/24]}\n"),
			"192.0.2.9", "x/a", 80, policy.TCP, false},
		{"NetworkPolicy namespaceSelector {} does not allow world", np("x", "all-ns", "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {}\n"),
			"203.0.113.7", "x/a", 80, policy.TCP, false},
		{"NetworkPolicy empty from allows world", np("x", "all", "podSelector: {}\ningress:\n- {}\n"),
			"203.0.113.7", "x/a", 80, policy.TCP, true},
		{"world entity allows ingress from world", cnp("x", "w", "endpointSelector: {}\ningress:\n- fromEntities: [world]\n"),
			"203.0.113.7", "x/a", 80, policy.TCP, true},
		{"fromCIDR allows the matching world source", cnp("x", "fc", "endpointSelector: {}\ningress:\n- fromCIDR: [203.0.113.7]\n"),
			"203.0.113.7", "x/a", 80, policy.TCP, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := mustRepo(t, tt.policies)
			side := func(ref string) policy.Side {
				switch {
				case ref == "host":
					return host
				case strings.Contains(ref, "/"):
					return sideOf(t, repo, ref)
				}
				return world(ref)
			}
			src, dst := side(tt.from), side(tt.to)
			v := repo.Decide(policy.Flow{Src: src, Dst: dst, Proto: tt.proto, Port: tt.port})
			if v.Allowed != tt.want {
				t.Fatalf("%s -> %s %d/%s allowed = %v, want %v\negress: %s\ningress: %s",
					tt.from, tt.to, tt.port, tt.proto, v.Allowed, tt.want, v.Egress.Explain(), v.Ingress.Explain())
			}
			// The verdict tables must agree with Decide on the enforced side.
			for _, s := range []struct {
				self, peer policy.Side
				dir        policy.Direction
				dec        policy.Decision
			}{{src, dst, policy.Egress, v.Egress}, {dst, src, policy.Ingress, v.Ingress}} {
				if s.self.Endpoint == nil {
					continue
				}
				got, _ := repo.Table(s.self.Endpoint, s.dir).Lookup(policy.PeerInfo{Identity: s.peer.Identity, Addr: s.peer.Addr}, tt.proto, tt.port)
				if got != s.dec.Allowed {
					t.Errorf("%s table says %v, Decide says %v", s.dir, got, s.dec.Allowed)
				}
			}
		})
	}
}
