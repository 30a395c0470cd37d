package netnsexec_test

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/rampartsec/rampart/internal/netnsexec"
	"github.com/rampartsec/rampart/internal/testenv"
)

func TestDo(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces")
	// netns.New switches the calling thread: keep this goroutine on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	ns, err := netns.New() // switches this thread; switch back at once
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(host); err != nil {
		t.Fatal(err)
	}
	var inside netns.NsHandle
	if err := netnsexec.Do(ns, func() (err error) { inside, err = netns.Get(); return err }); err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if !inside.Equal(ns) {
		t.Error("fn did not run in the target namespace")
	}
	after, _ := netns.Get()
	defer after.Close()
	if !after.Equal(host) {
		t.Error("the caller's thread was left in another namespace")
	}
	if err := netnsexec.DoPath("/nonexistent/netns", func() error { return nil }); err == nil {
		t.Error("DoPath on a missing path succeeded")
	}
}
