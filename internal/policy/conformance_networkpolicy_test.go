package policy_test

import (
	"testing"

	"github.com/rampartsec/rampart/internal/policy"
)

type reachCase struct {
	name     string
	policies string
	port     uint16
	proto    policy.Protocol
	want     reach
}

// networkPolicyCases is the NetworkPolicy conformance table. It follows the
// Kubernetes API reference and the scenarios of the upstream e2e suite
// (test/e2e/network/netpol), whose cluster the harness reproduces; each
// case names the upstream scenario it mirrors where there is one.
var networkPolicyCases = []reachCase{
	{
		name: "no policy: everything allowed",
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "default-deny-ingress",
		policies: np("x", "deny-ingress", `
podSelector: {}
ingress: []
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false),
	},
	{
		name: "default-deny-ingress without ingress field",
		policies: np("x", "deny-ingress", `
podSelector: {}
policyTypes: [Ingress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false),
	},
	{
		name: "default-deny-all",
		policies: np("x", "deny-all", `
podSelector: {}
policyTypes: [Ingress, Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false).set("x/*", "*", false),
	},
	{
		name: "default-deny-egress",
		policies: np("x", "deny-egress", `
podSelector: {}
policyTypes: [Egress]
`),
		port: 81, proto: policy.UDP,
		want: newReach(true).set("x/*", "*", false),
	},
	{
		name: "allow traffic from pods within server namespace based on podSelector",
		policies: np("x", "allow-b", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchLabels: {pod: b}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("x/b", "x/a", true),
	},
	{
		name: "allow ingress from pods in all namespaces (namespaceSelector {})",
		policies: np("x", "allow-all-ns", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector: {}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "allow traffic only from a different namespace based on namespaceSelector",
		policies: np("x", "allow-y", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/*", "x/a", true),
	},
	{
		name: "namespaceSelector on kubernetes.io/metadata.name",
		policies: np("x", "allow-y", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: y}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/*", "x/a", true),
	},
	{
		name: "namespaceSelector matchExpressions on kubernetes.io/metadata.name",
		policies: np("x", "allow-not-y", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchExpressions:
      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [y]}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("y/*", "x/a", false),
	},
	{
		name: "podSelector with matchExpressions",
		policies: np("x", "allow-b-expr", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchExpressions:
      - {key: pod, operator: In, values: [b]}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("x/b", "x/a", true),
	},
	{
		name: "namespaceSelector with matchExpressions",
		policies: np("x", "allow-y-expr", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchExpressions:
      - {key: ns, operator: In, values: [y]}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/*", "x/a", true),
	},
	{
		name: "podSelector OR namespaceSelector (two peers)",
		policies: np("x", "or", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchExpressions:
      - {key: ns, operator: NotIn, values: [x]}
  - podSelector:
      matchLabels: {pod: b}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/c", "x/a", false),
	},
	{
		name: "podSelector AND namespaceSelector (one peer)",
		policies: np("x", "and", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchExpressions:
      - {key: ns, operator: NotIn, values: [x]}
    podSelector:
      matchLabels: {pod: b}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/b", "x/a", true).set("z/b", "x/a", true),
	},
	{
		name: "multiple podSelectors and namespaceSelectors with NotIn",
		policies: np("x", "multi", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchExpressions:
      - {key: ns, operator: NotIn, values: [x]}
    podSelector:
      matchExpressions:
      - {key: pod, operator: In, values: [b, c]}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/b", "x/a", true).set("y/c", "x/a", true).
			set("z/b", "x/a", true).set("z/c", "x/a", true),
	},
	{
		name: "any of two podSelectors",
		policies: np("x", "two-pods", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchLabels: {pod: b}
  - podSelector:
      matchLabels: {pod: c}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("x/b", "x/a", true).set("x/c", "x/a", true),
	},
	{
		name: "pod in a different namespace by podSelector and namespaceSelector",
		policies: np("x", "y-a", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
    podSelector:
      matchLabels: {pod: a}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/a", "x/a", true),
	},
	{
		name: "ingress on port 81 only: port 80 denied",
		policies: np("x", "port-81", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
  ports:
  - {port: 81, protocol: TCP}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "ingress on port 81 only: port 81 allowed",
		policies: np("x", "port-81", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
  ports:
  - {port: 81, protocol: TCP}
`),
		port: 81, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/*", "x/a", true),
	},
	{
		name: "stacked policies with overlapping podSelectors are a union",
		policies: np("x", "port-81", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
  ports:
  - {port: 81}
`) + np("x", "port-80", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
  ports:
  - {port: 80}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("y/*", "x/a", true),
	},
	{
		name: "allow-all ingress ({} rule)",
		policies: np("x", "allow-all", `
podSelector: {}
ingress:
- {}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "allow-all ingress takes precedence over a narrower policy",
		policies: np("x", "narrow", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchLabels: {pod: b}
`) + np("x", "allow-all", `
podSelector: {}
ingress:
- {}
`),
		port: 81, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "allow-all egress takes precedence over default deny egress",
		policies: np("x", "deny-egress", `
podSelector: {}
policyTypes: [Egress]
`) + np("x", "allow-all-egress", `
podSelector: {}
egress:
- {}
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "ingress on one named port",
		policies: np("x", "named", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - port: serve-81-tcp
`),
		port: 81, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "ingress on one named port: other port denied",
		policies: np("x", "named", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - port: serve-81-tcp
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "ingress from namespace on one named port",
		policies: np("x", "named-ns", `
podSelector: {}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: y}
  ports:
  - port: serve-80-tcp
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/*", false).set("y/*", "x/*", true),
	},
	{
		name: "named port with the wrong protocol does not match",
		policies: np("x", "named-udp", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: serve-80-tcp, protocol: UDP}
`),
		port: 80, proto: policy.UDP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "egress on one named port resolves against the destination",
		policies: np("x", "egress-named", `
podSelector:
  matchLabels: {pod: a}
egress:
- ports:
  - {port: serve-80-udp, protocol: UDP}
policyTypes: [Egress]
`),
		port: 80, proto: policy.UDP,
		want: newReach(true),
	},
	{
		name: "egress on one named port: other port denied",
		policies: np("x", "egress-named", `
podSelector:
  matchLabels: {pod: a}
egress:
- ports:
  - {port: serve-80-udp, protocol: UDP}
policyTypes: [Egress]
`),
		port: 81, proto: policy.UDP,
		want: newReach(true).set("x/a", "*", false),
	},
	{
		name: "deny ingress from pods in other namespaces",
		policies: np("x", "same-ns", `
podSelector: {}
ingress:
- from:
  - podSelector: {}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("y/*", "x/*", false).set("z/*", "x/*", false),
	},
	{
		name: "deny egress from pods based on podSelector",
		policies: np("x", "deny-a-egress", `
podSelector:
  matchLabels: {pod: a}
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false),
	},
	{
		name: "ingress and egress specified together",
		policies: np("x", "both", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchLabels: {pod: b}
egress:
- to:
  - namespaceSelector:
      matchLabels: {ns: y}
policyTypes: [Ingress, Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("x/b", "x/a", true).
			set("x/a", "*", false).set("x/a", "y/*", true),
	},
	{
		name: "client-side egress deny wins even when the server allows",
		policies: np("x", "deny-egress-a", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - podSelector:
      matchLabels: {pod: b}
policyTypes: [Egress]
`) + np("z", "allow-x-a", `
podSelector:
  matchLabels: {pod: c}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: x}
    podSelector:
      matchLabels: {pod: a}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false).set("x/a", "x/b", true).
			set("*", "z/c", false).set("x/a", "z/c", false),
	},
	{
		name: "egress to a server in another namespace by podSelector and namespaceSelector",
		policies: np("x", "egress-y-a", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - namespaceSelector:
      matchLabels: {ns: y}
    podSelector:
      matchLabels: {pod: a}
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false).set("x/a", "y/a", true),
	},
	{
		name: "any port on one protocol: UDP allowed",
		policies: np("x", "udp-any", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: x}
  ports:
  - protocol: UDP
`),
		port: 81, proto: policy.UDP,
		want: newReach(true).set("y/*", "x/a", false).set("z/*", "x/a", false),
	},
	{
		name: "any port on one protocol: TCP not allowed by a UDP-only policy",
		policies: np("x", "udp-any", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchLabels: {ns: x}
  ports:
  - protocol: UDP
`),
		port: 81, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "SCTP is not mistaken for TCP",
		policies: np("x", "sctp", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: 80, protocol: SCTP}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "SCTP policy allows SCTP",
		policies: np("x", "sctp", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: 80, protocol: SCTP}
`),
		port: 80, proto: policy.SCTP,
		want: newReach(true),
	},
	{
		name: "UDP policy isolates UDP on other ports",
		policies: np("x", "udp-80", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: 80, protocol: UDP}
`),
		port: 81, proto: policy.UDP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "egress to a CIDR block that holds the server",
		policies: np("x", "egress-cidr", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - ipBlock:
      cidr: 10.244.2.0/24
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false).set("x/a", "y/*", true),
	},
	{
		name: "egress to a CIDR block with an except clause",
		policies: np("x", "egress-except", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - ipBlock:
      cidr: 10.244.0.0/16
      except: [10.244.2.11/32]
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "y/b", false),
	},
	{
		name: "an address in both CIDR and except is allowed by a second policy",
		policies: np("x", "egress-except", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - ipBlock:
      cidr: 10.244.0.0/16
      except: [10.244.2.11/32]
policyTypes: [Egress]
`) + np("x", "egress-b", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - ipBlock:
      cidr: 10.244.2.11/32
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "ingress from an ipBlock matches pod addresses",
		policies: np("x", "from-cidr", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - ipBlock:
      cidr: 10.244.3.0/24
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("z/*", "x/a", true),
	},
	{
		name: "ingress and egress controlled independently",
		policies: np("x", "egress-only-b", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - podSelector:
      matchLabels: {pod: b}
policyTypes: [Egress]
`) + np("x", "ingress-only-c", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchLabels: {pod: c}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false).set("x/a", "x/b", true).
			set("*", "x/a", false).set("x/c", "x/a", true),
	},
	{
		name: "policyTypes defaults to Ingress and Egress when egress rules exist",
		policies: np("x", "defaulted", `
podSelector:
  matchLabels: {pod: a}
egress:
- to:
  - podSelector:
      matchLabels: {pod: b}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false).set("x/a", "*", false).set("x/a", "x/b", true),
	},
	{
		name: "rules of a direction missing from policyTypes are ignored",
		policies: np("x", "egress-type-only", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchLabels: {pod: b}
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false),
	},
	{
		name: "endPort range allows ports inside it",
		policies: np("x", "range", `
podSelector:
  matchLabels: {pod: a}
egress:
- ports:
  - {port: 79, endPort: 81, protocol: TCP}
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "endPort range denies ports outside it",
		policies: np("x", "range", `
podSelector:
  matchLabels: {pod: a}
egress:
- ports:
  - {port: 82, endPort: 90, protocol: TCP}
policyTypes: [Egress]
`),
		port: 81, proto: policy.TCP,
		want: newReach(true).set("x/a", "*", false),
	},
	{
		name: "multiple endPort ranges",
		policies: np("x", "ranges", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: 70, endPort: 75}
  - {port: 80, endPort: 80}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true),
	},
	{
		name: "policy in one namespace does not select pods of another",
		policies: np("y", "deny-y", `
podSelector:
  matchLabels: {pod: a}
policyTypes: [Ingress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "y/a", false),
	},
	{
		name: "egress to DNS only",
		policies: np("x", "dns-only", `
podSelector: {}
egress:
- to:
  - namespaceSelector:
      matchLabels: {ns: z}
    podSelector:
      matchLabels: {pod: c}
  ports:
  - {port: 53, protocol: UDP}
  - {port: 53, protocol: TCP}
policyTypes: [Egress]
`),
		port: 80, proto: policy.UDP,
		want: newReach(true).set("x/*", "*", false),
	},
	{
		name: "ICMP is denied by a rule with ports",
		policies: np("x", "tcp-only", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: 80}
`),
		port: 8, proto: policy.ICMP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "ICMP is allowed by a rule without ports",
		policies: np("x", "from-x", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector: {}
`),
		port: 8, proto: policy.ICMP,
		want: newReach(true).set("y/*", "x/a", false).set("z/*", "x/a", false),
	},
	{
		name: "egress to DNS: the DNS port is allowed",
		policies: np("x", "dns-only", `
podSelector: {}
egress:
- to:
  - namespaceSelector:
      matchLabels: {ns: z}
    podSelector:
      matchLabels: {pod: c}
  ports:
  - {port: 53, protocol: UDP}
policyTypes: [Egress]
`),
		port: 53, proto: policy.UDP,
		want: newReach(true).set("x/*", "*", false).set("x/*", "z/c", true),
	},
	{
		name: "ingress from an ipBlock with except on pod addresses",
		policies: np("x", "cidr-except", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - ipBlock:
      cidr: 10.244.0.0/16
      except: [10.244.2.0/24]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("y/*", "x/a", false),
	},
	{
		name: "podSelector matchExpressions Exists",
		policies: np("x", "exists", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - podSelector:
      matchExpressions:
      - {key: pod, operator: Exists}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("y/*", "x/a", false).set("z/*", "x/a", false),
	},
	{
		name: "namespaceSelector matchExpressions DoesNotExist selects nothing labelled",
		policies: np("x", "no-ns-label", `
podSelector:
  matchLabels: {pod: a}
ingress:
- from:
  - namespaceSelector:
      matchExpressions:
      - {key: ns, operator: DoesNotExist}
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("*", "x/a", false),
	},
	{
		name: "SCTP port range with endPort",
		policies: np("x", "sctp-range", `
podSelector:
  matchLabels: {pod: a}
ingress:
- ports:
  - {port: 80, endPort: 81, protocol: SCTP}
`),
		port: 81, proto: policy.SCTP,
		want: newReach(true),
	},
	{
		name: "named egress port with a namespaceSelector",
		policies: np("x", "named-egress-ns", `
podSelector:
  matchLabels: {pod: b}
egress:
- to:
  - namespaceSelector:
      matchLabels: {ns: y}
  ports:
  - {port: serve-81-udp, protocol: UDP}
policyTypes: [Egress]
`),
		port: 81, proto: policy.UDP,
		want: newReach(true).set("x/b", "*", false).set("x/b", "y/*", true),
	},
	{
		name: "egress policy with protocol only isolates other protocols",
		policies: np("x", "udp-egress", `
podSelector:
  matchLabels: {pod: c}
egress:
- ports:
  - protocol: UDP
policyTypes: [Egress]
`),
		port: 80, proto: policy.TCP,
		want: newReach(true).set("x/c", "*", false),
	},
	{
		name: "two policies: one isolates egress, the other allows one destination",
		policies: np("y", "deny-egress", `
podSelector: {}
policyTypes: [Egress]
`) + np("y", "allow-to-x-a", `
podSelector:
  matchLabels: {pod: b}
egress:
- to:
  - namespaceSelector:
      matchLabels: {ns: x}
    podSelector:
      matchLabels: {pod: a}
policyTypes: [Egress]
`),
		port: 81, proto: policy.TCP,
		want: newReach(true).set("y/*", "*", false).set("y/b", "x/a", true),
	},
}

func TestNetworkPolicyConformance(t *testing.T) {
	for _, tc := range networkPolicyCases {
		t.Run(tc.name, func(t *testing.T) {
			checkReach(t, mustRepo(t, tc.policies), tc.port, tc.proto, tc.want)
		})
	}
}
