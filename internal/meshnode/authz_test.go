package meshnode_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/resource"
)

// The cluster of these tests: a server in namespace shop, an allowed
// client and a second client that NetworkPolicy does not let in.
const clusterYAML = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {rampart.io/mesh: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: shop, labels: {app: server}}
spec:
  serviceAccountName: server
  containers: [{name: c, image: x, ports: [{containerPort: 8080}, {containerPort: 9090}]}]
status: {podIP: 10.0.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {serviceAccountName: client, containers: [{name: c, image: x}]}
status: {podIP: 10.0.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: shop, labels: {app: other}}
spec: {serviceAccountName: other, containers: [{name: c, image: x}]}
status: {podIP: 10.0.0.12}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
  - from: [{podSelector: {matchLabels: {app: other}}}]
    ports: [{port: 8080}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: server-l7, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}], rules: {http: [{method: GET, path: "/public/.*"}]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: shop}
spec:
  selector: {matchLabels: {app: server}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]}]
`

func setup(t *testing.T) *meshnode.Authorizer {
	t.Helper()
	objs, err := resource.DecodeBytes("cluster.yaml", []byte(clusterYAML))
	if err != nil {
		t.Fatal(err)
	}
	var l4, istio []*resource.Object
	for _, o := range objs {
		if strings.HasPrefix(o.APIVersion, "security.istio.io") {
			istio = append(istio, o)
		} else {
			l4 = append(l4, o)
		}
	}
	repo, err := policy.Build(context.Background(), l4, identity.NewLocal())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := mesh.NewEngine(istio, mesh.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var a meshnode.Authorizer
	a.Update(meshnode.Snapshot{Mesh: eng, Repo: repo, Workloads: map[string]meshnode.Member{
		"shop/server": {Labels: map[string]string{"app": "server"}, ServiceAccount: "server", Mesh: true, L7Ports: []uint16{9090}},
	}})
	return &a
}

var server = proxy.Workload{Namespace: "shop", Name: "server", ServiceAccount: "server", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.10")}}

func conn(srcIP, principal string, port uint16) proxy.Connection {
	return proxy.Connection{
		Transport:       proxy.TransportHBONE,
		SourcePrincipal: principal,
		Source:          netip.AddrPortFrom(netip.MustParseAddr(srcIP), 40000),
		Destination:     server,
		DestinationPort: port,
	}
}

// TestAuthorizeConn checks the connection-level order: the kernel's L3/L4
// verdict for the inner port first, then AuthorizationPolicy.
func TestAuthorizeConn(t *testing.T) {
	a := setup(t)
	for _, tc := range []struct {
		name       string
		c          proxy.Connection
		allow      bool
		reasonPart string
	}{
		{"allowed principal on an allowed port", conn("10.0.0.11", "spiffe://cluster.local/ns/shop/sa/client", 8080), true, ""},
		{"port NetworkPolicy does not open", conn("10.0.0.11", "spiffe://cluster.local/ns/shop/sa/client", 7000), false, "L3/L4"},
		{"L4 allowed, principal not allowed", conn("10.0.0.12", "spiffe://cluster.local/ns/shop/sa/other", 8080), false, "only-client"},
		{"forged principal from another address", conn("10.0.0.99", "spiffe://cluster.local/ns/shop/sa/client", 8080), false, "L3/L4"},
		{"L7 port defers to requests", conn("10.0.0.11", "spiffe://cluster.local/ns/shop/sa/client", 9090), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.AuthorizeConn(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || !strings.Contains(d.Reason+" "+d.Policy, tc.reasonPart) {
				t.Errorf("AuthorizeConn = %+v, want allow=%v mentioning %q", d, tc.allow, tc.reasonPart)
			}
		})
	}
}

// TestAuthorizeHTTP checks per-request decisions on the Cilium L7 port:
// rules.http decides with Cilium's 403 body, after AuthorizationPolicy.
func TestAuthorizeHTTP(t *testing.T) {
	a := setup(t)
	req := func(principal, method, path string) proxy.Request {
		return proxy.Request{Connection: conn("10.0.0.11", principal, 9090), Method: method, Host: "server", Path: path, Header: http.Header{}}
	}
	for _, tc := range []struct {
		name   string
		r      proxy.Request
		allow  bool
		status int
		body   string
	}{
		{"allowed by rules.http", req("spiffe://cluster.local/ns/shop/sa/client", "GET", "/public/a"), true, 0, ""},
		{"method not in rules.http", req("spiffe://cluster.local/ns/shop/sa/client", "POST", "/public/a"), false, 403, "Access denied"},
		{"path normalised before matching", req("spiffe://cluster.local/ns/shop/sa/client", "GET", "/public/../admin"), false, 403, "Access denied"},
		{"AuthorizationPolicy first", req("spiffe://cluster.local/ns/shop/sa/other", "GET", "/public/a"), false, 0, ""},
		// "get" is not "GET" to a rule, nor to most applications.
		{"lower-case method refused", req("spiffe://cluster.local/ns/shop/sa/client", "get", "/public/a"), false, 400, "bad request method"},
		{"mixed-case method refused", req("spiffe://cluster.local/ns/shop/sa/client", "Post", "/public/a"), false, 400, "bad request method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.AuthorizeHTTP(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || d.Status != tc.status || d.Body != tc.body {
				t.Errorf("AuthorizeHTTP = %+v, want allow=%v status=%d body=%q", d, tc.allow, tc.status, tc.body)
			}
		})
	}
	if need, _ := a.NeedsHTTP(server, 9090); !need {
		t.Error("NeedsHTTP(9090) = false, want true (Cilium L7 port)")
	}
	if need, _ := a.NeedsHTTP(server, 8080); need {
		t.Error("NeedsHTTP(8080) = true, want false (principal-only policy)")
	}
}

// TestAuthorizeHTTPPathNormalization checks that the configured
// normalization decides what is matched and what is forwarded, as
// Istio's meshConfig.pathNormalization does.
func TestAuthorizeHTTPPathNormalization(t *testing.T) {
	for _, tc := range []struct {
		mode  mesh.PathNormalization
		path  string
		allow bool
		fwd   string
	}{
		{mesh.NormalizeBase, "//public/a", false, ""}, // BASE keeps "//": "/public/.*" does not match
		{mesh.NormalizeMergeSlashes, "//public/a", true, "/public/a"},
		{mesh.NormalizeBase, "/x/..%2Fpublic/a", false, ""}, // %2F stays encoded: one segment
		{mesh.NormalizeDecodeAndMergeSlashes, "/x/..%2Fpublic/a", true, "/public/a"},
		{mesh.NormalizeNone, "/public/../admin", true, "/public/../admin"}, // what Istio's NONE does: matched as sent
	} {
		t.Run(tc.mode.String()+" "+tc.path, func(t *testing.T) {
			a := setup(t)
			a.PathNormalization = tc.mode
			d, err := a.AuthorizeHTTP(proxy.Request{Connection: conn("10.0.0.11", "spiffe://cluster.local/ns/shop/sa/client", 9090),
				Method: "GET", Host: "server", Path: tc.path, Header: http.Header{}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || (tc.allow && d.Path != tc.fwd) {
				t.Errorf("AuthorizeHTTP = %+v, want allow=%v forwarding %q", d, tc.allow, tc.fwd)
			}
		})
	}
}

// TestUnknownWorkloadFailsClosed checks that a workload the snapshot does
// not know is refused, and that PeerMode's zero answer is STRICT.
func TestUnknownWorkloadFailsClosed(t *testing.T) {
	var empty meshnode.Authorizer
	if _, err := empty.AuthorizeConn(conn("10.0.0.11", "", 8080)); err == nil {
		t.Error("AuthorizeConn before any Update: no error")
	}
	a := setup(t)
	c := conn("10.0.0.11", "", 8080)
	c.Destination.Name = "ghost"
	if _, err := a.AuthorizeConn(c); err == nil {
		t.Error("AuthorizeConn for an unknown workload: no error")
	}
	if m, err := a.PeerMode(c.Destination, 8080); err == nil || m != proxy.PeerStrict {
		t.Errorf("PeerMode(unknown) = %v, %v; want STRICT and an error", m, err)
	}
	if m, err := a.PeerMode(server, 8080); err != nil || m != proxy.PeerPermissive {
		t.Errorf("PeerMode(server) = %v, %v; want PERMISSIVE (Istio's default)", m, err)
	}
}

// TestHTTPPortNames checks Istio's protocol selection by port name.
func TestHTTPPortNames(t *testing.T) {
	for name, want := range map[string]bool{
		"http": true, "http-web": true, "HTTP": true, "http2": true, "grpc": true, "grpc-web": true,
		"https": false, "tcp": false, "mongo": false, "": false, "httpx": false, "tls-http": false,
	} {
		if got := meshnode.IsHTTPPortName(name); got != want {
			t.Errorf("IsHTTPPortName(%q) = %v, want %v", name, got, want)
		}
	}
}
