package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// NodeBinary is the node daemon "rampart up" and "rampart down" hand over
// to. It is a binary of its own so that every other rampart command starts
// without initialising the embedded etcd server and the agent.
const NodeBinary = "rampart-node"

// newNodeHandover returns a command that replaces this process with
// "rampart-node NAME ARGS...": flags, help and exit code are the daemon's
// own, and under systemd the unit's main process stays the daemon.
func newNodeHandover(name, short string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := findNodeBinary()
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			argv := append([]string{bin, name}, args...)
			if socketFlag != "" {
				argv = append(argv, "--socket", socketFlag)
			}
			return &ExitError{Code: 1, Err: handOver(bin, argv)}
		},
	}
}

// findNodeBinary looks for rampart-node next to this executable first, so
// that a build directory or a release archive works without PATH, then in
// PATH.
func findNodeBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), NodeBinary)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(NodeBinary)
	if err == nil {
		return p, nil
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("the node daemon %s is neither next to rampart nor in PATH: build both with `go build -o . ./cmd/...`", NodeBinary)
	}
	return "", fmt.Errorf("find %s: %w", NodeBinary, err)
}
