package policy_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/resource"
)

// The conformance harness models the cluster of the upstream Kubernetes
// network-policy e2e suite: namespaces x, y and z (labelled ns=<name>),
// each with pods a, b and c (labelled pod=<name>), every pod serving ports
// 80 and 81 on TCP, UDP and SCTP under the names serve-<port>-<proto>.
var (
	namespaces = []string{"x", "y", "z"}
	podNames   = []string{"a", "b", "c"}
	allPods    = func() []string {
		var out []string
		for _, ns := range namespaces {
			for _, p := range podNames {
				out = append(out, ns+"/"+p)
			}
		}
		return out
	}()
)

// podIP returns the address of pod ns/p: 10.244.<ns index>.<pod index+10>.
func podIP(ref string) string {
	ns, p, _ := strings.Cut(ref, "/")
	return fmt.Sprintf("10.244.%d.%d", strings.Index("xyz", ns)+1, strings.Index("abc", p)+10)
}

func clusterYAML() string {
	var b strings.Builder
	for _, ns := range namespaces {
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {ns: %s}\n---\n", ns, ns)
		for _, p := range podNames {
			fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {pod: %s}\nspec:\n  containers:\n", p, ns, p)
			for _, port := range []int{80, 81} {
				for _, proto := range []string{"TCP", "UDP", "SCTP"} {
					fmt.Fprintf(&b, "  - name: c%d-%s\n    image: agnhost\n    ports: [{name: serve-%d-%s, containerPort: %d, protocol: %s}]\n",
						port, strings.ToLower(proto), port, strings.ToLower(proto), port, proto)
				}
			}
			fmt.Fprintf(&b, "status:\n  podIP: %s\n---\n", podIP(ns+"/"+p))
		}
	}
	return b.String()
}

func mustRepo(t testing.TB, policies string) *policy.Repository {
	t.Helper()
	objs, err := resource.DecodeBytes("cluster.yaml", []byte(clusterYAML()+policies))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	repo, err := policy.Build(context.Background(), objs, nil)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return repo
}

// reach is an expected truth table over allPods; self pairs are always
// allowed, as traffic from a pod to itself is.
type reach map[[2]string]bool

func newReach(def bool) reach {
	r := reach{}
	for _, a := range allPods {
		for _, b := range allPods {
			r[[2]string{a, b}] = def || a == b
		}
	}
	return r
}

// set sets from -> to; either may be "*" (every pod) or "ns/*".
func (r reach) set(from, to string, v bool) reach {
	for _, a := range allPods {
		for _, b := range allPods {
			if a != b && matchRef(from, a) && matchRef(to, b) {
				r[[2]string{a, b}] = v
			}
		}
	}
	return r
}

func matchRef(pattern, ref string) bool {
	if pattern == "*" || pattern == ref {
		return true
	}
	if ns, ok := strings.CutSuffix(pattern, "/*"); ok {
		return strings.HasPrefix(ref, ns+"/")
	}
	return false
}

func sideOf(t testing.TB, repo *policy.Repository, ref string) policy.Side {
	t.Helper()
	e, err := repo.Lookup(ref)
	if err != nil {
		t.Fatal(err)
	}
	return policy.Side{Endpoint: e, Identity: e.Identity, Addr: netip.MustParseAddr(podIP(ref))}
}

// checkReach decides every pair with Decide and with the expanded verdict
// tables, and fails with both truth tables when either differs from want.
func checkReach(t *testing.T, repo *policy.Repository, port uint16, proto policy.Protocol, want reach) {
	t.Helper()
	got := reach{}
	var tableErrs []string
	for _, a := range allPods {
		src := sideOf(t, repo, a)
		eg := repo.Table(src.Endpoint, policy.Egress)
		for _, b := range allPods {
			dst := sideOf(t, repo, b)
			v := repo.Decide(policy.Flow{Src: src, Dst: dst, Proto: proto, Port: port})
			got[[2]string{a, b}] = v.Allowed
			if a == b {
				continue
			}
			in := repo.Table(dst.Endpoint, policy.Ingress)
			egT, _ := eg.Lookup(policy.PeerInfo{Identity: dst.Identity, Addr: dst.Addr}, proto, port)
			inT, _ := in.Lookup(policy.PeerInfo{Identity: src.Identity, Addr: src.Addr}, proto, port)
			if egT != v.Egress.Allowed || inT != v.Ingress.Allowed {
				tableErrs = append(tableErrs, fmt.Sprintf("%s -> %s: tables say egress=%v ingress=%v, Decide says egress=%v ingress=%v",
					a, b, egT, inT, v.Egress.Allowed, v.Ingress.Allowed))
			}
		}
	}
	if !equalReach(got, want) {
		t.Errorf("%d/%s truth table mismatch\nwant:\n%s\ngot:\n%s", port, proto, want, got)
	}
	for _, e := range tableErrs {
		t.Error(e)
	}
}

func equalReach(a, b reach) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (r reach) String() string {
	var b strings.Builder
	b.WriteString("    ")
	for _, p := range allPods {
		b.WriteString(p + " ")
	}
	b.WriteByte('\n')
	for _, a := range allPods {
		b.WriteString(a + " ")
		for _, c := range allPods {
			if r[[2]string{a, c}] {
				b.WriteString(" .  ")
			} else {
				b.WriteString(" X  ")
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// np wraps a NetworkPolicy spec (YAML indented by two spaces) in a
// document.
func np(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s---\n", name, ns, indent(spec))
}

// cnp wraps a CiliumNetworkPolicy spec; ns "" makes it cluster-wide.
func cnp(ns, name, spec string) string {
	if ns == "" {
		return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: %s\nspec:\n%s---\n", name, indent(spec))
	}
	return fmt.Sprintf("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s---\n", name, ns, indent(spec))
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	// Strip the common leading tabs of a Go raw string, then indent by two.
	min := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if min < 0 || n < min {
			min = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= min && min > 0 {
			l = l[min:]
		}
		b.WriteString("  " + strings.ReplaceAll(l, "\t", "  ") + "\n")
	}
	return b.String()
}

var _ = identity.World
