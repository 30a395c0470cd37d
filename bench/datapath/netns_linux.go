package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/vishvananda/netns"

	"github.com/rampartsec/rampart/internal/netnsexec"
)

// inNetns runs fn on a thread switched into ns.
func inNetns(ns netns.NsHandle, fn func() error) error { return netnsexec.Do(ns, fn) }

// newNetns creates an anonymous network namespace. It lives as long as the
// returned handle or a process inside it, so nothing is left behind in
// /run/netns when the benchmark is killed.
func newNetns() (netns.NsHandle, error) { return netnsexec.New() }

// startIn starts cmd inside ns. The child inherits the namespace of the
// thread that forks it, and is killed if this process dies.
func startIn(ns netns.NsHandle, cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return inNetns(ns, cmd.Start)
}

// sysctl writes a per-namespace sysctl such as net/ipv4/ip_forward inside
// ns; /proc/sys/net resolves against the writing thread's namespace.
func sysctl(ns netns.NsHandle, name, value string) error {
	return inNetns(ns, func() error {
		if err := os.WriteFile("/proc/sys/"+name, []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
		}
		return nil
	})
}
