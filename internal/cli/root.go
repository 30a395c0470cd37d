// Package cli implements the rampart command line. Each command lives in its
// own file; this file wires them and maps errors to exit codes: 0 success,
// 1 failure (including "the check found problems"), 2 usage error.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// ExitError carries an exit code out of a command. A nil Err means the
// command has already printed what the user needs to see.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// UsageError marks an error in how the command was called (exit code 2).
func UsageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// failed reports that the command ran and found problems it has printed
// (exit code 1 with no further message).
var failed = &ExitError{Code: 1}

// GroupRunE is the RunE of commands that only group subcommands: without
// arguments they print help, with an unknown subcommand they fail with a
// usage error (cobra would print help and exit 0).
func GroupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageError("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// oneShotGC lets the heap of a command that reads its input, answers and
// exits grow to five times its live size between collections (GOGC=400)
// instead of two: such a process lives for tens of milliseconds, and with
// the default a tenth of it went to collecting garbage it would never
// reuse. An explicit GOGC in the environment wins; servers (guardrail
// serve, probe serve) keep the default.
func oneShotGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// NewRoot returns the root command with every subcommand attached.
func NewRoot(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "rampart",
		Short:         "Rampart: network policy, workload identity and posture for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError("%v", err) })
	root.PersistentFlags().StringVar(&socketFlag, "socket", "", "node API socket (default $RAMPART_SOCKET or /run/rampart/rampart.sock)")
	root.AddCommand(
		newNodeHandover("up", "Run a Rampart node in the foreground (control plane and agent)"),
		newNodeHandover("down", "Remove everything a node created: endpoints, network namespaces, veths, routes, pinned maps"),
		newStatusCmd(s),
		newApplyCmd(s), newGetCmd(s), newDeleteCmd(s),
		newRunCmd(s), newStopCmd(s), newLogsCmd(s), newExecCmd(s), newEndpointCmd(s), newObserveCmd(s), newProbeCmd(s),
		newPolicyCmd(s),
		newAuditCmd(s),
		newNodeHandover("guardrail", "The admission guardrail: serve the webhook, install its configuration"),
		newCertCmd(s),
	)
	return root
}

// Main runs the CLI with args and returns the process exit code.
func Main(args []string, in io.Reader, out, errw io.Writer) int {
	s := Streams{In: in, Out: out, Err: errw}
	return Execute(NewRoot(s), s, args)
}

// Execute runs root with args and maps its error to an exit code and a
// message on s.Err. rampart-node shares it so both binaries fail alike.
func Execute(root *cobra.Command, s Streams, args []string) int {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError("%v", err) })
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	errw := s.Err
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(errw, "Error:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(errw, "Error:", err)
	// cobra reports unknown commands and bad arguments as plain errors.
	if isCobraUsageError(err) {
		return 2
	}
	return 1
}
