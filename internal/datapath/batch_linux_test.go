package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/rampartsec/rampart/internal/testenv"
)

// TestBatchSupported checks that this kernel takes policy and ipcache
// writes as single BPF_MAP_UPDATE_BATCH calls rather than the per-element
// fallback, which would make a large policy push thousands of syscalls.
func TestBatchSupported(t *testing.T) {
	testenv.RequireRoot(t, "CAP_BPF")
	dir := filepath.Join(BPFFSRoot, "rampart-test", fmt.Sprintf("batch-%d", os.Getpid()))
	d, err := Open(Options{PinDir: dir, ConntrackMaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Remove(); os.Remove(filepath.Dir(dir)) }()
	keys := []bpfPolicyKey{{Prefixlen: 80, Endpoint: 1, Proto: 6, Peer: 300, Dport: be16(80)}, {Prefixlen: 72, Endpoint: 1, Proto: 6, Peer: 300, Dport: be16(0x0100)}}
	vals := []bpfPolicyValue{{Verdict: bpfPolicyVerdictPOLICY_ALLOW}, {Verdict: bpfPolicyVerdictPOLICY_DENY}}
	n, err := d.maps.Policy.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skip("kernel has no batch updates for LPM tries; UpdatePolicy falls back to single updates")
	}
	if err != nil || n != 2 {
		t.Fatalf("batch update: %d, %v", n, err)
	}
	// batchDelete skips keys that are already gone and deletes the rest.
	missing := bpfPolicyKey{Prefixlen: 80, Endpoint: 2, Proto: 6, Peer: 1, Dport: be16(1)}
	if err := batchDelete(d.maps.Policy, []bpfPolicyKey{missing, keys[0], missing, keys[1]}); err != nil {
		t.Fatalf("batch delete: %v", err)
	}
	if left, _ := d.PolicyEntries(1); len(left) != 0 {
		t.Errorf("left after delete: %v", left)
	}
}
