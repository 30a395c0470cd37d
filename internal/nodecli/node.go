// Package nodecli is the command line of rampart-node, the node daemon:
// "up" runs the node, "down --cleanup" removes what it created, and
// "guardrail" serves and installs the admission webhook. It is a
// binary of its own so that the rampart CLI does not link the embedded etcd
// server, the eBPF loader and the agent, whose package initialisation alone
// cost about 25 ms on every CLI invocation (the way cilium and cilium-agent,
// or etcdctl and etcd, are split). "rampart up", "rampart down" and
// "rampart guardrail" hand over to this binary.
package nodecli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/agent"
	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/cli"
	"github.com/rampartsec/rampart/internal/mesh"
)

// Main runs rampart-node with args and returns the process exit code.
func Main(args []string, in io.Reader, out, errw io.Writer) int {
	s := cli.Streams{In: in, Out: out, Err: errw}
	return cli.Execute(NewRoot(s), s, args)
}

// NewRoot returns rampart-node's root command: up, down and the admission
// guardrail, the commands that run servers or change a node or a cluster,
// and need the agent or client-go's typed clients.
func NewRoot(s cli.Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "rampart-node",
		Short:         "The Rampart node daemon: control plane and agent of a standalone node, and the admission guardrail",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	var socket string
	root.PersistentFlags().StringVar(&socket, "socket", "", "node API socket (default $RAMPART_SOCKET or /run/rampart/rampart.sock)")
	root.AddCommand(newUpCmd(s, &socket), newDownCmd(s), newGuardrailCmd(s))
	return root
}

func newUpCmd(s cli.Streams, socket *string) *cobra.Command {
	var (
		cfg              agent.Config
		cidr4, cidr6     string
		logJSON, verbose bool
		localRedirect    bool
		pathNorm         string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a Rampart node in the foreground (control plane and agent)",
		Long: `Run a whole Rampart node on this machine: embedded etcd (or --etcd-endpoints),
policy resolution, the eBPF datapath and the local API on a root-only unix socket.
Workloads are started with "rampart run". Stopping the node leaves enforcement in
place; "rampart down --cleanup" removes everything it created.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags first: a mistake in them is worth knowing whoever
			// runs the command.
			var err error
			if cfg.PodCIDR4, err = parseCIDR(cidr4, "--pod-cidr"); err != nil {
				return err
			}
			if cfg.PodCIDR6, err = parseCIDR(cidr6, "--pod-cidr6"); err != nil {
				return err
			}
			if cfg.PathNormalization, err = mesh.ParsePathNormalization(pathNorm); err != nil {
				return cli.UsageError("--path-normalization: %v", err)
			}
			if os.Geteuid() != 0 {
				return &cli.ExitError{Code: 1, Err: errors.New("rampart up loads eBPF programs and creates network namespaces: run it as root")}
			}
			cfg.Socket = api.SocketPath(*socket)
			cfg.DisableLocalRedirect = !localRedirect
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			opts := &slog.HandlerOptions{Level: level}
			if logJSON {
				cfg.Logger = slog.New(slog.NewJSONHandler(s.Err, opts))
			} else {
				cfg.Logger = slog.New(slog.NewTextHandler(s.Err, opts))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := agent.Run(ctx, cfg); err != nil && !errors.Is(err, context.Canceled) {
				return &cli.ExitError{Code: 1, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.StateDir, "state-dir", agent.DefaultStateDir, "state directory (embedded etcd, endpoint state, logs)")
	f.StringVar(&cidr4, "pod-cidr", "10.200.0.0/16", "IPv4 range for endpoint addresses (empty: no IPv4)")
	f.StringVar(&cidr6, "pod-cidr6", "fd00:200::/64", "IPv6 range for endpoint addresses (empty: no IPv6)")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "external etcd cluster (default: embedded etcd in the state directory)")
	f.StringVar(&cfg.EtcdCA, "etcd-cafile", "", "CA bundle of the external etcd")
	f.StringVar(&cfg.EtcdCert, "etcd-certfile", "", "client certificate for the external etcd")
	f.StringVar(&cfg.EtcdKey, "etcd-keyfile", "", "client key for the external etcd")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9962", "loopback address of the Prometheus /metrics endpoint (empty: off)")
	f.StringVar(&pathNorm, "path-normalization", "BASE", "how the mesh proxy normalizes request paths before matching and forwarding them, as Istio's meshConfig.pathNormalization: "+mesh.PathNormalizationNames())
	f.BoolVar(&localRedirect, "local-redirect", true, "deliver traffic between endpoints from one endpoint's veth straight into the other's namespace (false: route it through the host)")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	f.BoolVarP(&verbose, "verbose", "v", false, "log debug records")
	return cmd
}

func parseCIDR(s, flag string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p != p.Masked() {
		return netip.Prefix{}, cli.UsageError("%s: %q is not a network prefix", flag, s)
	}
	return p, nil
}

func newDownCmd(s cli.Streams) *cobra.Command {
	var (
		stateDir string
		cleanup  bool
	)
	cmd := &cobra.Command{
		Use:   "down --cleanup",
		Short: "Remove everything a node created: endpoints, network namespaces, veths, routes, pinned maps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cleanup {
				return cli.UsageError("nothing to do: stop `rampart up` with Ctrl-C or SIGTERM (enforcement stays), or pass --cleanup to remove everything")
			}
			if os.Geteuid() != 0 {
				return &cli.ExitError{Code: 1, Err: errors.New("rampart down --cleanup removes network namespaces and pinned eBPF maps: run it as root")}
			}
			rep, err := agent.Cleanup(cmd.Context(), stateDir)
			if err != nil {
				return &cli.ExitError{Code: 1, Err: err}
			}
			fmt.Fprintln(s.Out, rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", agent.DefaultStateDir, "state directory of the node")
	cmd.Flags().BoolVar(&cleanup, "cleanup", false, "remove everything the node created")
	return cmd
}
