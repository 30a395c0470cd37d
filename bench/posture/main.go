// Command posture compares Rampart's manifest audit with two peers,
// kube-score and Trivy's Kubernetes misconfiguration scanner, on the posture
// corpus (internal/posture/testdata/corpus), in one run:
//
//   - the findings of each tool on each manifest;
//   - every security finding a peer reports that Rampart misses, through
//     the mapping table mapping.yaml (peer checks that are not about
//     security are listed as out of scope);
//   - manifests per second for each tool, measured the same way: the tool's
//     binary started on the whole corpus, several repetitions, median.
//
// Peers are found in PATH or $GOPATH/bin; install-peers.sh installs them.
// A missing peer is reported and skipped.
//
//	go run ./bench/posture               # all tools, 5 repetitions
//	go run ./bench/posture -reps 9 -peers kube-score
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rampartsec/rampart/internal/cli"
	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// selfEnv makes this program act as the rampart CLI, so that Rampart runs
// as a process started on files like the peers, from the code of this
// checkout, without a separate build.
const selfEnv = "RAMPART_BENCH_AS_CLI"

func main() {
	if os.Getenv(selfEnv) == "1" {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	var cfg config
	flag.StringVar(&cfg.corpus, "corpus", "", "corpus directory (default internal/posture/testdata/corpus of this module)")
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions of the whole-corpus timing")
	peers := flag.String("peers", "kube-score,trivy", "comma-separated peers to compare, or none")
	flag.StringVar(&cfg.rampart, "rampart", "", "a rampart binary to measure instead of this program acting as the CLI")
	flag.Parse()
	if *peers != "none" && *peers != "" {
		cfg.peers = strings.Split(*peers, ",")
	}
	if cfg.corpus == "" {
		dir, err := moduleDir()
		if err != nil {
			log.Fatal(err)
		}
		cfg.corpus = filepath.Join(dir, "internal/posture/testdata/corpus")
	}
	res, err := run(context.Background(), cfg, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if len(res.missed) > 0 {
		os.Exit(1)
	}
}

// config is what one run compares.
type config struct {
	corpus  string
	reps    int
	peers   []string // peer names; none runs Rampart alone
	rampart string   // rampart binary; empty: this program as the CLI
}

// toolResult is what one tool did.
type toolResult struct {
	tool     *Tool
	version  string
	findings map[string][]Finding // by manifest
	perFile  time.Duration        // one invocation per manifest, summed
	whole    []time.Duration      // one invocation on the whole corpus, per repetition
}

// result is the outcome of a run.
type result struct {
	manifests []string
	tools     []*toolResult
	missing   []string // peers not installed, with how to install them
	missed    []verdict
	disputed  []verdict
	outScope  map[string]map[string]int // tool -> check -> findings
	unmapped  []verdict
	covered   int
	inProcess inProcess // Rampart's decode and audit time, without a process
	expectOK  int       // manifests on which Rampart reports what expect.yaml lists
}

// verdict is one peer finding and what the comparison made of it.
type verdict struct {
	tool, manifest string
	f              Finding
	rule           *CheckRule
	why            string
}

func run(ctx context.Context, cfg config, w io.Writer) (*result, error) {
	m, err := parseMapping(mappingYAML)
	if err != nil {
		return nil, err
	}
	c, err := loadCorpus(cfg.corpus)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "rampart-bench-posture-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	wholeDir, err := c.writeUnique(filepath.Join(work, "whole"))
	if err != nil {
		return nil, err
	}

	res := &result{manifests: c.names, outScope: map[string]map[string]int{}}
	tools, err := setupTools(cfg, work, res)
	if err != nil {
		return nil, err
	}
	for _, t := range tools {
		tr := &toolResult{tool: t, findings: map[string][]Finding{}, version: toolVersion(t)}
		// Findings: one invocation per manifest, since every manifest is a
		// scenario of its own (its own namespace, policies and mesh label)
		// and the tools that read several objects together (Rampart, and
		// kube-score for NetworkPolicies) must not mix scenarios.
		for _, name := range c.names {
			got, d, err := t.Run(ctx, []string{filepath.Join(c.dir, name)}, "")
			if err != nil {
				return nil, err
			}
			tr.perFile += d
			tr.findings[name] = got[name]
		}
		res.tools = append(res.tools, tr)
	}
	// Throughput: the whole corpus in one invocation, with every object
	// renamed per manifest so that no two collide. Repetitions take the
	// tools in turn, so that a change in the machine's load (other jobs on
	// a shared machine) falls on every tool alike.
	files, _ := filepath.Glob(filepath.Join(wholeDir, "*.yaml"))
	for range max(cfg.reps, 1) {
		for _, tr := range res.tools {
			got, d, err := tr.tool.Run(ctx, files, wholeDir)
			if err != nil {
				return nil, err
			}
			if len(got) == 0 {
				return nil, fmt.Errorf("%s found nothing in the whole corpus", tr.tool.Name)
			}
			tr.whole = append(tr.whole, d)
		}
	}
	if res.inProcess, err = measureInProcess(wholeDir, max(cfg.reps, 1)); err != nil {
		return nil, err
	}
	res.compare(m, c)
	res.print(w, c)
	return res, nil
}

// setupTools finds Rampart and the peers; a missing peer is recorded, not
// an error.
func setupTools(cfg config, work string, res *result) ([]*Tool, error) {
	var tools []*Tool
	if cfg.rampart != "" {
		tools = append(tools, rampartTool(cfg.rampart, nil, nil))
	} else {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		tools = append(tools, rampartTool(self, nil, []string{selfEnv + "=1"}))
	}
	for _, p := range cfg.peers {
		var t *Tool
		switch p {
		case "kube-score":
			t = kubeScoreTool("")
		case "trivy":
			t = trivyTool("", filepath.Join(work, "trivy-cache"))
		default:
			return nil, fmt.Errorf("unknown peer %q (want kube-score or trivy)", p)
		}
		bin, err := findBinary(p)
		if err != nil {
			res.missing = append(res.missing, fmt.Sprintf("%v: install it with bench/posture/install-peers.sh, or: %s", err, t.Install))
			continue
		}
		t.bin = bin
		tools = append(tools, t)
	}
	return tools, nil
}

// toolVersion asks a peer for its version, for the report.
func toolVersion(t *Tool) string {
	if t.Name == "rampart" {
		return "this checkout"
	}
	args := []string{"version"}
	if t.Name == "trivy" {
		args = []string{"--version"}
	}
	out, err := execOutput(t.bin, args...)
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return line
}

// compare sorts every peer finding into covered, missed, disputed, out of
// scope or unmapped.
func (r *result) compare(m *Mapping, c *corpus) {
	var rampart *toolResult
	for _, t := range r.tools {
		if t.tool.Name == "rampart" {
			rampart = t
		}
	}
	for _, name := range r.manifests {
		var ids []string
		for _, f := range rampart.findings[name] {
			ids = append(ids, f.Check)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if want, ok := c.expect[name]; ok && slices.Equal(ids, want) {
			r.expectOK++
		}
		for _, t := range r.tools {
			if t == rampart {
				continue
			}
			for _, f := range t.findings[name] {
				v := verdict{tool: t.tool.Name, manifest: name, f: f, rule: m.classify(t.tool.Name, f)}
				switch {
				case v.rule == nil:
					r.unmapped = append(r.unmapped, v)
				case v.rule.Scope == OutOfScope:
					if r.outScope[v.tool] == nil {
						r.outScope[v.tool] = map[string]int{}
					}
					r.outScope[v.tool][outKey(v.rule)]++
				case slices.ContainsFunc(v.rule.Rampart, func(id string) bool { return slices.Contains(ids, id) }):
					r.covered++
				default:
					if d := m.disputed(v.tool, name, f.Check); d != nil {
						v.why = d.Why
						r.disputed = append(r.disputed, v)
					} else {
						r.missed = append(r.missed, v)
					}
				}
			}
		}
	}
}

func outKey(r *CheckRule) string {
	k := r.Check
	if r.Match != "" {
		k += " (" + r.Match + ")"
	}
	return k + ": " + r.Why
}

// inProcess is the split of Rampart's work on the whole corpus.
type inProcess struct {
	reps          int
	decode, audit time.Duration
}

// measureInProcess decodes and audits the whole corpus in this process,
// to show how much of a run is Rampart's own work.
func measureInProcess(dir string, reps int) (inProcess, error) {
	var dec, aud []time.Duration
	for range reps {
		t0 := time.Now()
		objs, err := resource.LoadAndDecode([]string{dir}, nil)
		if err != nil {
			return inProcess{}, err
		}
		t1 := time.Now()
		posture.Audit(objs, posture.Options{})
		dec, aud = append(dec, t1.Sub(t0)), append(aud, time.Since(t1))
	}
	return inProcess{reps: reps, decode: median(dec), audit: median(aud)}, nil
}

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
