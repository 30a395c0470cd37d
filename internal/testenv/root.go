package testenv

import (
	"os"
	"testing"
)

// RequireRoot skips a test that needs root (eBPF, network namespaces) when
// it is not root, but only outside CI: under CI a missing privilege is a
// broken runner, and a skip would hide that the test never ran. need says
// what the test needs root for.
func RequireRoot(t testing.TB, need string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatalf("CI is set but the test is not running as root; it needs %s", need)
	}
	t.Skipf("needs root (%s); run as root, or with CI set to fail instead", need)
}

// InCI reports whether the tests run under CI (CI set to anything), where
// a missing prerequisite must fail a test rather than skip it.
func InCI() bool { return os.Getenv("CI") != "" }
