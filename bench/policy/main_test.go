package main

import (
	"os"
	"testing"
)

// TestSmallRun keeps the benchmark from rotting: a tiny cluster must
// resolve, change and tabulate with sane results.
func TestSmallRun(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	r, err := run(scale{namespaces: 3, podsPerNS: 20, appsPerNS: 5, policiesPerNS: 10}, 4, devnull)
	if err != nil {
		t.Fatal(err)
	}
	if r.pods != 60 || r.identities != 30 || r.policies != 30 {
		t.Errorf("cluster = %d pods, %d identities, %d policies; want 60, 30, 30", r.pods, r.identities, r.policies)
	}
	if r.tableEntries == 0 || r.matrixPairs != 3*60*60 {
		t.Errorf("tables = %d entries, matrix = %d flows", r.tableEntries, r.matrixPairs)
	}
}
