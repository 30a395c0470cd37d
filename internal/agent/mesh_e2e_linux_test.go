package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/cli"
	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/testenv"
)

// serveHTTP answers HTTP on 8080 with who asked, and echoes on TCP 8081.
func serveHTTP() {
	go serve8081()
	err := http.ListenAndServe(":8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	}))
	fmt.Println("http:", err)
	os.Exit(1)
}

func serve8081() {
	l, err := net.Listen("tcp", ":8081")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}

const meshYAML = `
apiVersion: v1
kind: Namespace
metadata: {name: bank, labels: {rampart.io/mesh: enabled}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: bank}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-http, namespace: bank}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: 8080}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: bank}
spec:
  selector: {matchLabels: {app: server}}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/bank/sa/client"]}}]}]
`

// TestMeshEndToEnd runs two workloads in a mesh-enabled namespace: they
// talk over mutual TLS with no change to either program, an
// AuthorizationPolicy that allows one principal makes another get 403, a
// capture of the client's veth shows no plaintext, and a process that goes
// around the proxy is stopped by the kernel (a port L3/L4 policy does not
// open) or by STRICT peer authentication (a port it does).
func TestMeshEndToEnd(t *testing.T) {
	needRoot(t)
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, dir+"/state", "10.233.0.0/24", "fd00:233::/64")
	t.Cleanup(func() {
		n.kill()
		if _, err := agentCleanup(dir + "/state"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n.apply(meshYAML)
	server := n.runSA("server", "bank", "server", map[string]string{"app": "server"}, "httpserver")
	client := n.runSA("client", "bank", "client", map[string]string{"app": "client"}, "sleep")
	intruder := n.runSA("intruder", "bank", "intruder", map[string]string{"app": "intruder"}, "sleep")
	if !waitHTTP(t, client.NetNS, server.IPv4) {
		for _, f := range collectFlows(t, n, api.FlowFilter{}) {
			t.Logf("flow %+v", f)
		}
		t.Fatalf("server %s did not answer through the mesh; node log:\n%s", server.IPv4, n.logs)
	}

	// Mutual TLS, transparently: a plain HTTP GET from the client.
	for _, addr := range []string{server.IPv4, "[" + server.IPv6 + "]"} {
		status, body := meshGet(t, client.NetNS, "http://"+addr+":8080/hello")
		if status != 200 || body != "hello /hello\n" {
			t.Errorf("client GET via %s = %d %q, want 200 %q", addr, status, body, "hello /hello\n")
		}
	}
	// The other principal: 403 from the proxy, as Istio answers.
	if status, body := meshGet(t, intruder.NetNS, "http://"+server.IPv4+":8080/hello"); status != 403 || body != "RBAC: access denied" {
		t.Errorf("intruder GET = %d %q, want 403 %q", status, body, "RBAC: access denied")
	}

	// Nothing readable on the wire: capture the client's host-side veth.
	capt := testenv.StartCapture(t, "", client.Interface)
	const marker = "rampart-secret-marker-7f3a"
	if status, _ := meshGet(t, client.NetNS, "http://"+server.IPv4+":8080/"+marker); status != 200 {
		t.Errorf("GET during capture = %d, want 200", status)
	}
	frames := capt.Stop()
	var tls13, plain int
	for _, f := range frames {
		if bytes.Contains(f, []byte(marker)) {
			plain++
		}
		if bytes.Contains(f, []byte{0x17, 0x03, 0x03}) {
			tls13++
		}
	}
	if plain > 0 || tls13 == 0 {
		t.Errorf("capture on %s: %d frames, %d with the plaintext marker (want 0), %d with TLS application data (want > 0)", client.Interface, len(frames), plain, tls13)
	}

	// Around the proxy: a socket with the proxy's mark is not captured.
	// To a port no policy opens, the kernel drops it.
	if bypassReached(t, client.NetNS, server.IPv4, 8081) {
		t.Error("bypass to port 8081 (not allowed by NetworkPolicy) reached the server")
	}
	// To the allowed port, the server's proxy refuses plaintext (STRICT).
	if bypassReached(t, client.NetNS, server.IPv4, 8080) {
		t.Error("plaintext bypass to port 8080 was answered under STRICT")
	}

	// Every AuthorizationPolicy field through real workloads: one policy
	// at a time replaces only-client, and requests from the client
	// (cluster.local/ns/bank/sa/client, 10.233.0.3) are answered as Istio
	// would.
	for _, tc := range authzFieldCases(server.IPv4) {
		t.Run("authz/"+tc.name, func(t *testing.T) {
			n.apply(authzPolicy(tc.spec))
			hdr := http.Header{}
			for k, v := range tc.header {
				hdr.Set(k, v)
			}
			var status int
			// The node applies policy asynchronously to the API call only
			// for the proxy's snapshot swap; retry briefly.
			for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				status, _ = meshDo(t, client.NetNS, tc.method, "http://"+server.IPv4+":8080"+tc.path, hdr)
				if status == tc.want || time.Now().After(deadline) {
					break
				}
			}
			if status != tc.want {
				t.Errorf("%s %s with %v under %s: status %d, want %d", tc.method, tc.path, tc.header, tc.spec, status, tc.want)
			}
		})
	}
	n.apply(authzPolicy(`{selector: {matchLabels: {app: server}}, rules: [{from: [{source: {principals: ["cluster.local/ns/bank/sa/client"]}}]}]}`))

	// PERMISSIVE accepts plaintext, which then meets authorization with
	// no principal: the proxy answers it, with a 403 here.
	n.apply(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: bank}
spec: {mtls: {mode: PERMISSIVE}}
`)
	reached := false
	for deadline := time.Now().Add(5 * time.Second); !reached && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		reached = bypassReached(t, client.NetNS, server.IPv4, 8080)
	}
	if !reached {
		t.Error("plaintext to port 8080 under PERMISSIVE was not answered")
	}

	// A policy the mesh cannot enforce is refused at apply, with its line,
	// and changes nothing.
	_, err := n.c.Apply(context.Background(), api.ApplyRequest{Inputs: []api.Input{{Name: "bad.yaml", Data: []byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: bank}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: GatewayClass, name: x}]
`)}}})
	var re *api.RequestError
	if !errors.As(err, &re) || re.Status != 422 || len(re.Body.Fields) == 0 || re.Body.Fields[0].File != "bad.yaml" || re.Body.Fields[0].Line == 0 {
		t.Errorf("apply of an AuthorizationPolicy the mesh cannot attach: err = %v, want 422 with bad.yaml:line", err)
	}
	if status, _ := meshGet(t, client.NetNS, "http://"+server.IPv4+":8080/after-bad-apply"); status != 200 {
		t.Errorf("GET after a refused apply = %d, want 200", status)
	}

	// Certificates: the CLI lists each workload's SPIFFE ID; a root
	// rotation starts without breaking traffic.
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"--socket", n.socket, "cert", "list"}, strings.NewReader(""), &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "spiffe://cluster.local/ns/bank/sa/client") || !strings.Contains(out.String(), "bank/server") {
		t.Errorf("cert list = %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := cli.Main([]string{"--socket", n.socket, "cert", "rotate"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "rotation prepared") {
		t.Errorf("cert rotate = %d\n%s%s", code, out.String(), errb.String())
	}
	if status, _ := meshGet(t, client.NetNS, "http://"+server.IPv4+":8080/after-rotate"); status != 200 {
		t.Errorf("GET after the rotation started = %d, want 200", status)
	}

	// Flows: the proxy's request records with principals, the kernel's
	// drop of the bypass.
	deadline := time.Now().Add(5 * time.Second)
	for {
		flows := collectFlows(t, n, api.FlowFilter{})
		var allowed, denied, kernelDrop bool
		for _, f := range flows {
			switch {
			case f.Layer == "proxy" && f.Kind == "request" && f.Status == 200 && f.Source.Principal == "spiffe://cluster.local/ns/bank/sa/client":
				allowed = true
			case f.Layer == "proxy" && f.Kind == "request" && f.Status == 403 && strings.Contains(f.Policy+f.DropReason, "only-client"):
				denied = true
			case f.Layer != "proxy" && f.Verdict == "DROPPED" && f.Dest.Port == 8081 && f.Source.Name == "bank/client":
				kernelDrop = true
			}
		}
		if allowed && denied && kernelDrop {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("flows: allowed request with principal %v, 403 by only-client %v, kernel drop of the bypass %v", allowed, denied, kernelDrop)
			for _, f := range flows {
				t.Logf("%+v", f)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A crash of the node: captured connections have no proxy while it is
	// down (they fail, closed rather than open), and the restarted node
	// serves the mesh again with the same CA.
	n.kill()
	if status, _ := meshGet(t, client.NetNS, "http://"+server.IPv4+":8080/while-down"); status != 0 {
		t.Errorf("GET while the node is down = %d, want no answer", status)
	}
	if bypassReached(t, client.NetNS, server.IPv4, 8081) {
		t.Error("while the node is down, a bypass to port 8081 reached the server: the kernel must still drop it")
	}
	n.start()
	if !waitHTTP(t, client.NetNS, server.IPv4) {
		t.Fatalf("the mesh did not come back after a restart; node log:\n%s", n.logs)
	}
	if status, body := meshGet(t, intruder.NetNS, "http://"+server.IPv4+":8080/hello"); status != 403 {
		t.Errorf("intruder GET after restart = %d %q, want 403", status, body)
	}
}

func (n *testNode) runSA(name, ns, sa string, labels map[string]string, workload string) api.Endpoint {
	n.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.t.Fatal(err)
	}
	ep, err := n.c.Run(context.Background(), api.RunRequest{
		Name: name, Namespace: ns, Labels: labels, ServiceAccount: sa,
		Ports:   []api.Port{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "echo", Port: 8081, Protocol: "TCP"}},
		Command: []string{"/usr/bin/env", "RAMPART_TEST_WORKLOAD=" + workload, exe},
	})
	if err != nil {
		n.t.Fatalf("run %s: %v", name, err)
	}
	return *ep
}

// meshGet does a plain GET from inside nsPath, as an unmodified
// application would.
func meshGet(t *testing.T, nsPath, rawURL string) (int, string) {
	t.Helper()
	return meshDo(t, nsPath, "GET", rawURL, nil)
}

// meshDo sends one request from inside nsPath. The connection is opened
// on the calling thread, which is in the namespace (net/http would dial
// from another goroutine, on a thread outside it).
func meshDo(t *testing.T, nsPath, method, rawURL string, header http.Header) (int, string) {
	t.Helper()
	var (
		status int
		body   string
	)
	inNetNS(t, nsPath, func() {
		req, err := http.NewRequest(method, rawURL, nil)
		if err != nil {
			t.Error(err)
			return
		}
		for k, v := range header {
			if strings.EqualFold(k, "Host") {
				req.Host = v[0]
				continue
			}
			req.Header[k] = v
		}
		c, err := net.DialTimeout("tcp", req.URL.Host, 3*time.Second)
		if err != nil {
			t.Logf("%s %s: %v", method, rawURL, err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		req.Close = true
		if err := req.Write(c); err != nil {
			t.Logf("%s %s: %v", method, rawURL, err)
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			t.Logf("%s %s: %v", method, rawURL, err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		status, body = resp.StatusCode, string(b)
	})
	return status, body
}

// waitHTTP waits for the server to answer through the mesh.
func waitHTTP(t *testing.T, nsPath, addr string) bool {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if status, _ := meshGet(t, nsPath, "http://"+addr+":8080/ready"); status == 200 {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// bypassReached connects from nsPath with the proxy's socket mark, which
// the capture rules exempt, sends a line and reports whether it came back.
func bypassReached(t *testing.T, nsPath, addr string, port int) bool {
	t.Helper()
	var ok bool
	inNetNS(t, nsPath, func() {
		d := net.Dialer{Timeout: time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(proxy.SocketMark))
			})
			if err != nil {
				return err
			}
			return serr
		}}
		c, err := d.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(port)))
		if err != nil {
			return
		}
		defer c.Close()
		if port == 8080 {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			b, _ := io.ReadAll(io.LimitReader(c, 64))
			ok = len(b) > 0
			return
		}
		ok = echo(c)
	})
	return ok
}

// authzPolicy renders the test's AuthorizationPolicy bank/only-client.
func authzPolicy(spec string) string {
	return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: only-client, namespace: bank}\nspec: " + spec + "\n"
}

type authzCase struct {
	name         string
	spec         string
	method, path string
	header       map[string]string
	want         int
}

// authzFieldCases exercise each AuthorizationPolicy field once allowed and
// once denied, on the server at serverIP.
func authzFieldCases(serverIP string) []authzCase {
	sel := `selector: {matchLabels: {app: server}}, `
	allow := func(rule string) string { return "{" + sel + "rules: [" + rule + "]}" }
	deny := func(rule string) string { return "{" + sel + "action: DENY, rules: [" + rule + "]}" }
	return []authzCase{
		{"principals", allow(`{from: [{source: {principals: ["cluster.local/ns/bank/sa/client"]}}]}`), "GET", "/", nil, 200},
		{"principals other", allow(`{from: [{source: {principals: ["cluster.local/ns/bank/sa/nobody"]}}]}`), "GET", "/", nil, 403},
		{"notPrincipals", allow(`{from: [{source: {notPrincipals: ["cluster.local/ns/bank/sa/client"]}}]}`), "GET", "/", nil, 403},
		{"namespaces", allow(`{from: [{source: {namespaces: ["bank"]}}]}`), "GET", "/", nil, 200},
		{"notNamespaces", allow(`{from: [{source: {notNamespaces: ["bank"]}}]}`), "GET", "/", nil, 403},
		{"ipBlocks", allow(`{from: [{source: {ipBlocks: ["10.233.0.0/24"]}}]}`), "GET", "/", nil, 200},
		{"notIpBlocks", allow(`{from: [{source: {notIpBlocks: ["10.233.0.0/24"]}}]}`), "GET", "/", nil, 403},
		{"remoteIpBlocks", allow(`{from: [{source: {remoteIpBlocks: ["192.0.2.0/24"]}}]}`), "GET", "/", nil, 403},
		{"requestPrincipals without a JWT", allow(`{from: [{source: {requestPrincipals: ["*"]}}]}`), "GET", "/", nil, 403},
		{"methods", allow(`{to: [{operation: {methods: ["GET"]}}]}`), "GET", "/", nil, 200},
		{"methods other", allow(`{to: [{operation: {methods: ["GET"]}}]}`), "DELETE", "/", nil, 403},
		{"notMethods", allow(`{to: [{operation: {notMethods: ["DELETE"]}}]}`), "DELETE", "/", nil, 403},
		{"paths prefix", allow(`{to: [{operation: {paths: ["/api/*"]}}]}`), "GET", "/api/items", nil, 200},
		{"paths suffix", allow(`{to: [{operation: {paths: ["*.json"]}}]}`), "GET", "/admin/secrets", nil, 403},
		{"paths normalised", allow(`{to: [{operation: {paths: ["/api/*"]}}]}`), "GET", "/api/../admin", nil, 403},
		{"notPaths", deny(`{to: [{operation: {notPaths: ["/public*"]}}]}`), "GET", "/private", nil, 403},
		{"ports", allow(`{to: [{operation: {ports: ["8080"]}}]}`), "GET", "/", nil, 200},
		{"notPorts", allow(`{to: [{operation: {notPorts: ["8080"]}}]}`), "GET", "/", nil, 403},
		{"hosts", allow(`{to: [{operation: {hosts: ["shop.example"]}}]}`), "GET", "/", map[string]string{"Host": "SHOP.example"}, 200},
		{"notHosts", allow(`{to: [{operation: {notHosts: ["*.example"]}}]}`), "GET", "/", map[string]string{"Host": "shop.example"}, 403},
		{"when request.headers", allow(`{when: [{key: "request.headers[x-env]", values: ["prod"]}]}`), "GET", "/", map[string]string{"X-Env": "prod"}, 200},
		{"when request.headers notValues", allow(`{when: [{key: "request.headers[x-env]", notValues: ["prod"]}]}`), "GET", "/", map[string]string{"X-Env": "prod"}, 403},
		{"when source.namespace", allow(`{when: [{key: "source.namespace", values: ["bank"]}]}`), "GET", "/", nil, 200},
		{"when source.principal", allow(`{when: [{key: "source.principal", values: ["cluster.local/ns/bank/sa/other"]}]}`), "GET", "/", nil, 403},
		{"when destination.ip", allow(`{when: [{key: "destination.ip", values: ["` + serverIP + `/32"]}]}`), "GET", "/", nil, 200},
		{"when destination.port", allow(`{when: [{key: "destination.port", values: ["9999"]}]}`), "GET", "/", nil, 403},
		{"when source.ip", allow(`{when: [{key: "source.ip", values: ["10.233.0.0/24"]}]}`), "GET", "/", nil, 200},
		{"DENY wins over ALLOW", deny(`{to: [{operation: {paths: ["/admin*"]}}]}`), "GET", "/admin", nil, 403},
		{"DENY not matching", deny(`{to: [{operation: {paths: ["/admin*"]}}]}`), "GET", "/shop", nil, 200},
		{"AUDIT does not deny", "{" + sel + "action: AUDIT, rules: [{}]}", "GET", "/", nil, 200},
		{"CUSTOM fails closed", "{" + sel + "action: CUSTOM, provider: {name: ext-authz}, rules: [{}]}", "GET", "/", nil, 403},
		{"empty ALLOW rules deny", "{" + sel + "action: ALLOW}", "GET", "/", nil, 403},
	}
}
