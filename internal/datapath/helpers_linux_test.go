package datapath_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/testenv"
)

// requirePrivileged skips a test that needs root, but only outside CI: in
// CI a missing privilege is a broken runner, and a skip there would hide
// that the datapath was never tested.
func requirePrivileged(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t, "CAP_BPF, CAP_NET_ADMIN")
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// testPinDir returns a bpffs directory of the test's own under
// /sys/fs/bpf, so parallel test binaries never share maps.
func testPinDir(t testing.TB) string {
	return filepath.Join(datapath.BPFFSRoot, "rampart-test",
		fmt.Sprintf("%s-%d", unsafeName.ReplaceAllString(t.Name(), "_"), os.Getpid()))
}

// openDatapath opens (or re-opens) the datapath pinned at dir. The
// conntrack map is kept small because LRU maps are preallocated.
func openDatapath(t testing.TB, dir string) *datapath.Datapath {
	t.Helper()
	d, err := datapath.Open(datapath.Options{PinDir: dir, ConntrackMaxEntries: 4096})
	if err != nil {
		t.Fatalf("open datapath: %v", err)
	}
	return d
}

// removeDatapath removes every pin, link and map of d, then the shared
// parent directory if this was the last test using it.
func removeDatapath(t testing.TB, d *datapath.Datapath) {
	if err := d.Remove(); err != nil {
		t.Errorf("remove datapath: %v", err)
	}
	os.Remove(filepath.Dir(d.PinDir()))
}

// mustDatapath opens a datapath pinned in a directory of its own and
// removes it in t.Cleanup.
func mustDatapath(t *testing.T) *datapath.Datapath {
	t.Helper()
	requirePrivileged(t)
	d := openDatapath(t, testPinDir(t))
	t.Cleanup(func() { removeDatapath(t, d) })
	return d
}
