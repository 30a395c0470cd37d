package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/bench/internal/benchcmd"
	"github.com/rampartsec/rampart/internal/testenv"
)

// requirePrivileged skips a test that must run as root, but only outside
// CI: in CI a missing privilege is a broken runner, and a skip there would
// hide that the benchmark was never run.
func requirePrivileged(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "the benchmark runs as root")
}

// TestQuickRun keeps the benchmark from rotting: the quick mode must start
// every configuration, pass the set-up checks (the request succeeds
// through each, (c)'s policy denies the admin path), measure both loads,
// read the proxies' CPU and memory, find that (c)'s server side authorized
// every request by the policy's last rule, and print the report. (d), (e)
// and (f) are left out, with a message, when nginx is not installed; (e)
// and (f) when its stream module is not. In CI both are installed
// (.ci/run), and missing ones fail the test.
func TestQuickRun(t *testing.T) {
	requirePrivileged(t)
	configs := "a,b,c,d,e,f"
	skip := func(cs, what string, err error) {
		if testenv.InCI() {
			t.Fatalf("%s: %v (.ci/run installs it; CI must measure the comparison)", what, err)
		}
		for _, c := range strings.Split(cs, ",") {
			t.Run(c, func(t *testing.T) { t.Skipf("%s comparison skipped: %v", what, err) })
		}
	}
	if _, _, err := nginxVersion("nginx"); errors.Is(err, errNoNginx) {
		skip("d,e,f", "nginx", err)
		configs = "a,b,c"
	} else if _, err := nginxStreamModule(nginxModulesDir); errors.Is(err, errNoStreamModule) {
		skip("e,f", "nginx stream module", err)
		configs = "a,b,c,d"
	}
	o, err := parseFlags([]string{"-quick", "-configs", configs}, benchcmd.LogWriter(t))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range o.configs {
		for _, l := range allLoads {
			ss := rep.samples[c][l]
			if len(ss) != 1 {
				t.Errorf("%s %s: %d samples, want 1", c, l, len(ss))
				continue
			}
			s := ss[0]
			if s.ok == 0 || !(s.rate > 0) || s.p50 <= 0 || s.p99 < s.p50 {
				t.Errorf("%s %s: %+v", c, l, s)
			}
			if c.proxied() && (!(s.cpu[sideClient] > 0) || !(s.cpu[sideServer] > 0) || !(s.mem[sideClient] > 0) || !(s.mem[sideServer] > 0)) {
				t.Errorf("%s %s: no CPU or memory measured for a side: %+v", c, l, s)
			}
		}
	}
	// The fixed rate must be what the generator achieved.
	if r := rep.samples[cfgDirect][loadFixed][0].rate; r < 0.9*o.rate || r > 1.1*o.rate {
		t.Errorf("a: %v req/s at the fixed rate of %v", r, o.rate)
	}
	var b strings.Builder
	rep.print(&b)
	want := []string{"Added latency against a", "Istio ztunnel", "Goals", "allowed by bench/allow-api"}
	if o.has(cfgNginxL4) {
		want = append(want, "b/e = ", "floor: plaintext L4 relay pair (f)", "stream module")
	}
	for _, want := range want {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	t.Log("\n" + b.String())
}
