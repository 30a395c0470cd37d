package store_test

import (
	"os/exec"
	"syscall"
)

// setPdeathsig kills the etcd child if the test binary dies without running
// its cleanups (a panic or a -timeout kill), so no server outlives it.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
