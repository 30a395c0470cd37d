package main

import (
	"context"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/bench/internal/benchcmd"
	"github.com/rampartsec/rampart/internal/testenv"
)

// requirePrivileged skips a test that needs root, but only outside CI: in
// CI a missing privilege is a broken runner, and a skip there would hide
// that the benchmark was never run.
func requirePrivileged(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "CAP_SYS_ADMIN, CAP_BPF, CAP_NET_ADMIN")
}

// TestQuickRun keeps the benchmark from rotting: the quick mode for plain
// routing and for Rampart with ten rows must pass traffic (run checks that
// the allowed port answers, that the denied port is dropped under policy
// and that the datapath forwarded packets) and produce positive rates. It
// needs neither iptables nor iperf3.
func TestQuickRun(t *testing.T) {
	requirePrivileged(t)
	o, err := parseFlags([]string{"-quick", "-configs", "a,b", "-n", "10", "-measures", "rr,crr", "-settle", "100ms"}, benchcmd.LogWriter(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.variants {
		for _, m := range o.measures {
			vals := rep.values[v][m]
			if len(vals) != 1 || !(vals[0] > 0) {
				t.Errorf("%v %s = %v, want one positive value", v, m, vals)
			}
		}
	}
	if rep.forwarded == 0 {
		t.Error("the datapath forwarded no packets")
	}
	var b strings.Builder
	rep.print(&b)
	if !strings.Contains(b.String(), "b/a") {
		t.Errorf("report lacks the b/a ratios:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "b: local delivery ON") {
		t.Errorf("report does not say that b delivers locally, the node's default:\n%s", b.String())
	}
	t.Log("\n" + b.String())
}
