package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/resource"
)

// socketFlag is the --socket flag shared by the commands that talk to a
// node.
var socketFlag string

func client() *api.Client { return api.NewClient(api.SocketPath(socketFlag)) }

// nodeError maps an error from the node to an exit error, printing field
// errors one per line.
func nodeError(errw io.Writer, err error) error {
	var re *api.RequestError
	if errors.As(err, &re) && len(re.Body.Fields) > 0 {
		for _, f := range re.Body.Fields {
			fmt.Fprintln(errw, (&resource.FieldError{File: f.File, Line: f.Line, Path: f.Path, Msg: f.Msg}).Error())
		}
		fmt.Fprintln(errw, re.Body.Error)
		return failed
	}
	return &ExitError{Code: 1, Err: err}
}

func newApplyCmd(s Streams) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f PATHS",
		Short: "Apply manifests to the node, all or nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sendManifests(cmd, s, files, false)
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest files or directories, or - for stdin")
	return cmd
}

func sendManifests(cmd *cobra.Command, s Streams, files []string, del bool) error {
	if len(files) == 0 {
		return UsageError("-f is required (a file, a directory or - for stdin)")
	}
	inputs, err := resource.Load(files, s.In)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	req := api.ApplyRequest{Delete: del}
	for _, in := range inputs {
		req.Inputs = append(req.Inputs, api.Input{Name: in.Name, Data: in.Data})
	}
	resp, err := client().Apply(cmd.Context(), req)
	if err != nil {
		return nodeError(s.Err, err)
	}
	for _, a := range resp.Applied {
		fmt.Fprintln(s.Out, a)
	}
	return nil
}

func newDeleteCmd(s Streams) *cobra.Command {
	var (
		files     []string
		namespace string
	)
	cmd := &cobra.Command{
		Use:   "delete (-f PATHS | KIND NAME)",
		Short: "Delete objects from the node, all or nothing",
		Args:  cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(files) > 0 && len(args) > 0:
				return UsageError("give either -f or KIND NAME, not both")
			case len(files) > 0:
				return sendManifests(cmd, s, files, true)
			case len(args) != 2:
				return UsageError("want KIND NAME or -f PATHS")
			}
			resp, err := client().Delete(cmd.Context(), []api.ObjectRef{{Kind: args[0], Namespace: namespace, Name: args[1]}})
			if err != nil {
				return nodeError(s.Err, err)
			}
			for _, a := range resp.Applied {
				fmt.Fprintln(s.Out, a)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest files or directories, or - for stdin")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the object")
	return cmd
}

func newGetCmd(s Streams) *cobra.Command {
	var namespace, output string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List objects stored on the node",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" && output != "yaml" {
				return UsageError("unknown output format %q (want table, json or yaml)", output)
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			list, err := client().Objects(cmd.Context(), args[0], namespace, name)
			if err != nil {
				return nodeError(s.Err, err)
			}
			if name != "" && len(list.Items) == 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%s %s not found", args[0], name)}
			}
			switch output {
			case "json":
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			case "yaml":
				for i, it := range list.Items {
					if i > 0 {
						fmt.Fprintln(s.Out, "---")
					}
					y, err := yaml.JSONToYAML(it)
					if err != nil {
						return err
					}
					s.Out.Write(y)
				}
				return nil
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME")
			for _, it := range list.Items {
				var m struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Name, Namespace string
					} `json:"metadata"`
				}
				json.Unmarshal(it, &m)
				fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Kind, m.Metadata.Namespace, m.Metadata.Name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace (default: all)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func newRunCmd(s Streams) *cobra.Command {
	var (
		req    api.RunRequest
		labels []string
		ports  []string
	)
	cmd := &cobra.Command{
		Use:   "run --name NAME [-n NAMESPACE] [-l KEY=VALUE]... [--port NAME:PORT/PROTO]... -- CMD [ARGS]",
		Short: "Run a command as a workload in its own network namespace",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Name == "" {
				return UsageError("--name is required")
			}
			req.Command = args
			req.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return UsageError("-l %q: want KEY=VALUE", l)
				}
				req.Labels[k] = v
			}
			for _, p := range ports {
				port, err := parseRunPort(p)
				if err != nil {
					return UsageError("--port %q: %v", p, err)
				}
				req.Ports = append(req.Ports, port)
			}
			ep, err := client().Run(cmd.Context(), req)
			if err != nil {
				return nodeError(s.Err, err)
			}
			fmt.Fprintf(s.Out, "%s/%s running: endpoint %d, identity %d, %s %s\n", ep.Namespace, ep.Name, ep.ID, ep.Identity, ep.IPv4, ep.IPv6)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "workload name")
	f.StringVarP(&req.Namespace, "namespace", "n", "default", "namespace")
	f.StringArrayVarP(&labels, "label", "l", nil, "label KEY=VALUE (repeatable)")
	f.StringVar(&req.ServiceAccount, "service-account", "", "service account (default \"default\")")
	f.StringArrayVar(&ports, "port", nil, "declared port NAME:PORT/PROTO or PORT/PROTO (repeatable)")
	return cmd
}

func parseRunPort(s string) (api.Port, error) {
	var p api.Port
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		rest, name = name, ""
	}
	num, proto, ok := strings.Cut(rest, "/")
	if !ok {
		proto = "TCP"
	}
	var n uint64
	if _, err := fmt.Sscan(num, &n); err != nil || n == 0 || n > 65535 {
		return p, fmt.Errorf("port %q is not 1-65535", num)
	}
	p.Name, p.Port, p.Protocol = name, uint16(n), strings.ToUpper(proto)
	return p, nil
}

func newStopCmd(s Streams) *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a workload and remove its endpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := client().Stop(cmd.Context(), namespace, args[0]); err != nil {
				return nodeError(s.Err, err)
			}
			fmt.Fprintf(s.Out, "%s/%s stopped\n", namespace, args[0])
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace")
	return cmd
}

func newLogsCmd(s Streams) *cobra.Command {
	var (
		namespace string
		follow    bool
	)
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a workload's output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := client().Logs(cmd.Context(), namespace, args[0], follow, s.Out); err != nil {
				return nodeError(s.Err, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	return cmd
}

func newEndpointCmd(s Streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "endpoint", Short: "Inspect the node's endpoints", Args: cobra.ArbitraryArgs, RunE: GroupRunE}
	list := &cobra.Command{
		Use:   "list",
		Short: "List endpoints with identity, addresses, enforcement and counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			eps, err := client().Endpoints(cmd.Context())
			if err != nil {
				return nodeError(s.Err, err)
			}
			return writeEndpoints(s.Out, eps, output)
		},
	}
	get := &cobra.Command{
		Use:   "get NAMESPACE/NAME",
		Short: "Show one endpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			eps, err := client().Endpoints(cmd.Context())
			if err != nil {
				return nodeError(s.Err, err)
			}
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok {
				ns, name = "default", args[0]
			}
			for _, e := range eps {
				if e.Namespace == ns && e.Name == name {
					if output == "table" {
						output = "yaml"
					}
					return writeEndpoints(s.Out, []api.Endpoint{e}, output)
				}
			}
			return &ExitError{Code: 1, Err: fmt.Errorf("endpoint %s/%s not found", ns, name)}
		},
	}
	for _, c := range []*cobra.Command{list, get} {
		c.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	}
	cmd.AddCommand(list, get)
	return cmd
}

func writeEndpoints(w io.Writer, eps []api.Endpoint, output string) error {
	sort.Slice(eps, func(i, j int) bool { return eps[i].ID < eps[j].ID })
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(eps)
	case "yaml":
		data, err := yaml.Marshal(eps)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	case "table":
	default:
		return UsageError("unknown output format %q (want table, json or yaml)", output)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENDPOINT\tIDENTITY\tIPV4\tIPV6\tINGRESS\tEGRESS\tSTATE\tPACKETS (fwd/drop in, fwd/drop out)")
	for _, e := range eps {
		fmt.Fprintf(tw, "%d\t%s/%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d/%d, %d/%d\n", e.ID, e.Namespace, e.Name, e.Identity, e.IPv4, e.IPv6,
			enforcement(e.IngressEnforced, e.Audit), enforcement(e.EgressEnforced, e.Audit), e.State,
			e.Counters.IngressForwarded, e.Counters.IngressDropped, e.Counters.EgressForwarded, e.Counters.EgressDropped)
	}
	return tw.Flush()
}

func enforcement(on, audit bool) string {
	switch {
	case audit:
		return "audit"
	case on:
		return "enforced"
	}
	return "open"
}

func newStatusCmd(s Streams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := client().Status(cmd.Context())
			if err != nil {
				return nodeError(s.Err, err)
			}
			if output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "version\t%s\nuptime\t%s\nstate dir\t%s\nstore\t%s\npod CIDRs\t%s\nendpoints\t%d\npolicies\t%d\nidentities\t%d\nbpffs pins\t%s\nmetrics\t%s\nflows\t%d seen, %d dropped\n",
				st.Version, st.Uptime, st.StateDir, st.Store, strings.Join(st.PodCIDRs, ", "), st.Endpoints, st.Policies, st.Identities,
				st.PinDir, st.MetricsAddr, st.FlowsSeen, st.FlowsDropped)
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
