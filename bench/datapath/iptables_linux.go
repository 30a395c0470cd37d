package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// iptablesInstallHint is printed when iptables is missing.
const iptablesInstallHint = `iptables not found in PATH: install it (Debian/Ubuntu: apt-get install -y iptables), ` +
	`pass -iptables /path/to/iptables, or leave the iptables configurations out with -configs a,b`

// iptables locates the iptables binaries: bin for listing and bin-restore
// for loading, which must come from the same backend.
type iptables struct {
	bin, restore string
	// version is `iptables --version`, which names the backend, e.g.
	// "iptables v1.8.9 (nf_tables)".
	version string
}

func findIptables(bin string) (*iptables, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iptablesInstallHint, err)
	}
	restore, err := exec.LookPath(bin + "-restore")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", iptablesInstallHint, err)
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", path, err)
	}
	return &iptables{bin: path, restore: restore, version: strings.TrimSpace(string(out))}, nil
}

// Load replaces the filter table of ns with ruleset in one transaction.
func (ipt *iptables) Load(ctx context.Context, ns netns.NsHandle, ruleset string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipt.restore)
	cmd.Stdin = strings.NewReader(ruleset)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := startIn(ns, cmd); err != nil {
		return fmt.Errorf("start %s: %w", ipt.restore, err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w: %s", ipt.restore, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ForwardRules counts the rules of the FORWARD chain in ns.
func (ipt *iptables) ForwardRules(ctx context.Context, ns netns.NsHandle) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ipt.bin, "-w", "-S", "FORWARD")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := startIn(ns, cmd); err != nil {
		return 0, fmt.Errorf("start %s: %w", ipt.bin, err)
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("%s -S FORWARD: %w: %s", ipt.bin, err, strings.TrimSpace(errOut.String()))
	}
	return strings.Count(out.String(), "\n-A FORWARD "), nil
}
