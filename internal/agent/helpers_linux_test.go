package agent_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/agent"
	"github.com/rampartsec/rampart/internal/api"
)

func agentCleanup(stateDir string) (string, error) {
	return agent.Cleanup(context.Background(), stateDir)
}

func nsPathOf(t *testing.T, n *testNode, ep api.Endpoint) string {
	t.Helper()
	if ep.NetNS == "" {
		t.Fatalf("endpoint %s/%s has no network namespace path", ep.Namespace, ep.Name)
	}
	return ep.NetNS
}

// waitServing waits until the server workload has printed "serving".
func waitServing(t *testing.T, n *testNode, ep api.Endpoint) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var buf bytes.Buffer
		n.c.Logs(context.Background(), ep.Namespace, ep.Name, false, &buf)
		if strings.Contains(buf.String(), "serving") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/%s did not start serving", ep.Namespace, ep.Name)
}

func collectFlows(t *testing.T, n *testNode, f api.FlowFilter) []api.Flow {
	t.Helper()
	// Flow events arrive asynchronously from the ring buffer.
	time.Sleep(300 * time.Millisecond)
	var out []api.Flow
	if err := n.c.Flows(context.Background(), f, func(fl api.Flow) error {
		out = append(out, fl)
		return nil
	}); err != nil {
		t.Fatalf("flows: %v", err)
	}
	return out
}

func hasFlow(flows []api.Flow, proto, src, dst string) bool {
	for _, f := range flows {
		if f.Protocol == proto && f.Source.Name == src && f.Dest.Name == dst {
			return true
		}
	}
	return false
}

func dialTCP(addr string, port int) (net.Conn, error) {
	return net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), time.Second)
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
