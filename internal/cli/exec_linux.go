package cli

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netns"
)

// newExecCmd runs a command in a workload's network namespace, like
// `kubectl exec` for the network: the command sees the workload's
// interfaces and addresses, and its traffic is the workload's traffic.
func newExecCmd(s Streams) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "exec NAME -- CMD [ARGS]",
		Short: "Run a command in a workload's network namespace",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			eps, err := client().Endpoints(cmd.Context())
			if err != nil {
				return nodeError(s.Err, err)
			}
			ns, name := namespace, args[0]
			if a, b, ok := strings.Cut(name, "/"); ok {
				ns, name = a, b
			}
			path := ""
			for _, e := range eps {
				if e.Namespace == ns && e.Name == name {
					path = e.NetNS
				}
			}
			if path == "" {
				return &ExitError{Code: 1, Err: fmt.Errorf("no workload %s/%s", ns, name)}
			}
			bin, err := exec.LookPath(args[1])
			if err != nil {
				return &ExitError{Code: 1, Err: err}
			}
			// Namespaces belong to threads: enter it on this locked thread
			// and exec from it, so the new program starts inside.
			runtime.LockOSThread()
			h, err := netns.GetFromPath(path)
			if err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("open network namespace: %w", err)}
			}
			if err := netns.Set(h); err != nil {
				return &ExitError{Code: 1, Err: fmt.Errorf("enter network namespace: %w", err)}
			}
			return &ExitError{Code: 1, Err: syscall.Exec(bin, args[1:], os.Environ())}
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the workload")
	return cmd
}
