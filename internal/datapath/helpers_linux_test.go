package datapath_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/rampartsec/rampart/internal/datapath"
)

// requirePrivileged skips a test that needs root, but only outside CI: in
// CI a missing privilege is a broken runner, and a skip there would hide
// that the datapath was never tested.
func requirePrivileged(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "" {
		t.Skip("needs root (CAP_BPF, CAP_NET_ADMIN); run as root or with CI set to fail instead")
	}
	t.Fatal("CI is set but the test is not running as root: the datapath tests need CAP_BPF and CAP_NET_ADMIN")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// mustDatapath opens a datapath pinned in a directory of its own under
// /sys/fs/bpf and removes every pin, link and map in t.Cleanup. The
// conntrack map is kept small because LRU maps are preallocated.
func mustDatapath(t *testing.T) *datapath.Datapath {
	t.Helper()
	requirePrivileged(t)
	dir := filepath.Join(datapath.BPFFSRoot, "rampart-test",
		fmt.Sprintf("%s-%d", unsafeName.ReplaceAllString(t.Name(), "_"), os.Getpid()))
	d, err := datapath.Open(datapath.Options{PinDir: dir, ConntrackMaxEntries: 4096})
	if err != nil {
		t.Fatalf("open datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Remove(); err != nil {
			t.Errorf("remove datapath: %v", err)
		}
		os.Remove(filepath.Dir(dir)) // only succeeds once the last test is done
	})
	return d
}
