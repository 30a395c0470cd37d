package main

import (
	"fmt"
	"strings"
)

// scale sets the size of the synthetic cluster.
type scale struct {
	namespaces    int
	podsPerNS     int
	appsPerNS     int // label sets per namespace = appsPerNS * 2 tiers
	policiesPerNS int
}

// generate writes a cluster as YAML: namespaces labelled by team and env,
// pods whose labels give appsPerNS*2 distinct label sets per namespace, and
// policiesPerNS policies per namespace mixing NetworkPolicy and
// CiliumNetworkPolicy shapes seen in real clusters (default deny, app to
// app on ports and named ports, namespace selectors, ipBlock with except,
// Cilium deny rules, entities, CIDR sets, L7 HTTP rules). One policy in
// fifty is a CiliumClusterwideNetworkPolicy.
func generate(s scale) string {
	var b strings.Builder
	for n := 0; n < s.namespaces; n++ {
		ns := fmt.Sprintf("ns-%03d", n)
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {team: t%d, env: %s}\n---\n", ns, n%10, []string{"prod", "staging"}[n%2])
		for p := 0; p < s.podsPerNS; p++ {
			app, tier := p%s.appsPerNS, []string{"frontend", "backend"}[(p/s.appsPerNS)%2]
			fmt.Fprintf(&b, `apiVersion: v1
kind: Pod
metadata:
  name: pod-%d
  namespace: %s
  labels: {app: app-%d, tier: %s}
spec:
  containers:
  - name: c
    image: app:1
    ports:
    - {name: http, containerPort: 8080}
    - {name: metrics, containerPort: 9090}
    - {containerPort: 53, protocol: UDP}
status:
  podIP: 10.%d.%d.%d
---
`, p, ns, app, tier, n/250+1, n%250, p%250+1)
		}
		for k := 0; k < s.policiesPerNS; k++ {
			b.WriteString(policyDoc(n, k, s))
		}
	}
	return b.String()
}

func policyDoc(n, k int, s scale) string {
	ns := fmt.Sprintf("ns-%03d", n)
	a, c := k%s.appsPerNS, (k+1)%s.appsPerNS
	other := fmt.Sprintf("ns-%03d", (n+1)%s.namespaces)
	name := fmt.Sprintf("p-%d", k)
	np := func(spec string) string {
		return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s---\n", name, ns, spec)
	}
	cnp := func(spec string) string {
		return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: %s, namespace: %s}\nspec:\n%s---\n", name, ns, spec)
	}
	if (n*s.policiesPerNS+k)%50 == 49 {
		return fmt.Sprintf(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: ccnp-%s-%d}
spec:
  endpointSelector: {matchLabels: {app: app-%d}}
  ingress:
  - fromEndpoints: [{matchLabels: {tier: frontend}}]
    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
---
`, ns, k, a)
	}
	switch k % 10 {
	case 0:
		return np("  podSelector: {}\n  policyTypes: [Ingress]\n")
	case 1:
		return np(fmt.Sprintf("  podSelector: {matchLabels: {app: app-%d}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: app-%d, tier: frontend}}\n    ports: [{port: 8080}]\n", c, a))
	case 2:
		return np(fmt.Sprintf("  podSelector: {matchLabels: {tier: backend}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: t%d}}\n    ports: [{port: metrics}]\n", (n+1)%10))
	case 3:
		return np(fmt.Sprintf("  podSelector: {matchLabels: {app: app-%d}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.%d.0.0/16]}\n  - ports: [{port: 53, protocol: UDP}]\n", a, n%250))
	case 4:
		return cnp(fmt.Sprintf("  endpointSelector: {matchLabels: {app: app-%d}}\n  ingress:\n  - fromEndpoints:\n    - matchLabels: {app: app-%d}\n    - matchLabels: {k8s:io.kubernetes.pod.namespace: %s}\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}, {port: \"9090\"}]}]\n", a, c, other))
	case 5:
		return cnp(fmt.Sprintf("  endpointSelector: {matchLabels: {tier: backend}}\n  ingressDeny:\n  - fromEndpoints:\n    - matchLabels: {k8s:io.kubernetes.pod.namespace: %s, app: app-%d}\n", other, c))
	case 6:
		return cnp(fmt.Sprintf("  endpointSelector: {matchLabels: {app: app-%d}}\n  egress:\n  - toEntities: [world, kube-apiserver]\n  - toEndpoints: [{matchLabels: {tier: backend}}]\n    toPorts: [{ports: [{port: \"8080\", endPort: 8090, protocol: TCP}]}]\n", a))
	case 7:
		return cnp(fmt.Sprintf("  endpointSelector: {matchLabels: {app: app-%d, tier: backend}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {tier: frontend}}]\n    toPorts:\n    - ports: [{port: \"8080\", protocol: TCP}]\n      rules:\n        http:\n        - {method: GET, path: \"/api/v1/.*\"}\n        - {method: POST, path: \"/api/v1/orders\", headers: [\"X-Tenant: t%d\"]}\n", a, n%10))
	case 8:
		return cnp(fmt.Sprintf("  endpointSelector: {matchLabels: {app: app-%d}}\n  egress:\n  - toCIDRSet:\n    - cidr: 198.51.100.0/24\n      except: [198.51.100.%d/32]\n    toPorts: [{ports: [{port: \"443\", protocol: TCP}]}]\n", c, k))
	default:
		return np(fmt.Sprintf("  podSelector: {matchLabels: {app: app-%d}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}\n      podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [backend]}]}\n    ports: [{port: 8000, endPort: 8100, protocol: TCP}]\n", a))
	}
}
