package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampartsec/rampart/bench/internal/stats"
	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/testenv"
)

// BenchmarkProgramCost reports the kernel-timed cost of each packet path
// through the programs (the report's "Per-packet cost" table) as
// ns/packet, without setting up namespaces or traffic:
//
//	go test -run '^$' -bench ProgramCost -benchtime 5x ./bench/datapath
//
// Each iteration runs every path progRepeat times and the metrics are the
// medians over iterations, which keeps another tenant's bursts on a shared
// machine out of them: -benchtime 5x is a good compromise.
func BenchmarkProgramCost(b *testing.B) {
	testenv.RequireRoot(b, "CAP_BPF, CAP_NET_ADMIN")
	const progRepeat = 200_000
	ns := []int{10, 10_000}
	dir := filepath.Join(datapath.BPFFSRoot, fmt.Sprintf("%s%d", pinPrefix, os.Getpid()))
	r, err := openRampart(dir, ns, datapath.Config{}, false)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, n := range ns {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			runs := make([][]float64, len(progCases()))
			for b.Loop() {
				per, err := r.ProgramCost(n, progRepeat)
				if err != nil {
					b.Fatal(err)
				}
				for i, d := range per {
					runs[i] = append(runs[i], float64(d.Nanoseconds()))
				}
			}
			for i, c := range progCases() {
				b.ReportMetric(stats.Summarize(runs[i]).Med, metricName(c.name))
			}
		})
	}
}

// metricName turns a path name into a benchmark metric unit without
// spaces, which the benchmark format does not allow.
func metricName(s string) string {
	out := []byte("ns/")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', ',', '(', ')':
			if len(out) > 0 && out[len(out)-1] != '_' {
				out = append(out, '_')
			}
		default:
			out = append(out, c)
		}
	}
	for len(out) > 0 && out[len(out)-1] == '_' {
		out = out[:len(out)-1]
	}
	return string(out)
}
