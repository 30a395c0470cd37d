package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/api"
)

// newCertCmd shows and rotates the mesh's certificates: the node CA's
// roots and the workload certificates (SVIDs) the node holds.
func newCertCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Show the mesh CA's roots and workload certificates, and rotate the root",
		Args:  cobra.ArbitraryArgs,
		RunE:  GroupRunE,
	}
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the CA's roots and every mesh workload's certificate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			st, err := client().CA(cmd.Context())
			if err != nil {
				return nodeError(s.Err, err)
			}
			if output == "json" {
				return writeJSONOut(s.Out, st)
			}
			writeCATable(s.Out, st)
			return nil
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")

	var showOutput string
	show := &cobra.Command{
		Use:   "show NAMESPACE/NAME",
		Short: "Show one mesh workload's certificate (add -o pem for the chain)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" {
				return UsageError("workload %q: want NAMESPACE/NAME", args[0])
			}
			if showOutput != "table" && showOutput != "json" && showOutput != "pem" {
				return UsageError("--output %q: want table, json or pem", showOutput)
			}
			st, err := client().CA(cmd.Context())
			if err != nil {
				return nodeError(s.Err, err)
			}
			for _, w := range st.Workloads {
				if w.Namespace != ns || w.Name != name {
					continue
				}
				switch showOutput {
				case "json":
					return writeJSONOut(s.Out, w)
				case "pem":
					_, err := io.WriteString(s.Out, w.Chain)
					return err
				}
				writeLeaf(s.Out, w)
				return nil
			}
			return &ExitError{Code: 1, Err: fmt.Errorf("no mesh workload %s/%s on this node (is its namespace labelled rampart.io/mesh=enabled?)", ns, name)}
		},
	}
	show.Flags().StringVarP(&showOutput, "output", "o", "table", "output format: table, json or pem")

	var step string
	rotate := &cobra.Command{
		Use:   "rotate [--step start|promote|finish]",
		Short: "Rotate the CA's root without breaking connections",
		Long: `Rotate the CA's root in three steps. "start" adds a new root to the trust bundle
while the old one keeps signing; the new root starts signing by itself once every
certificate issued before has expired, and the old root leaves the bundle once
every certificate it signed has expired. "promote" and "finish" take those steps
early (see docs/ca.md for when that is safe).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch step {
			case "start", "promote", "finish":
			default:
				return UsageError("--step %q: want start, promote or finish", step)
			}
			st, err := client().RotateCA(cmd.Context(), step)
			if err != nil {
				return nodeError(s.Err, err)
			}
			writeCATable(s.Out, st)
			return nil
		},
	}
	rotate.Flags().StringVar(&step, "step", "start", "rotation step: start, promote or finish")
	cmd.AddCommand(list, show, rotate)
	return cmd
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return UsageError("--output %q: want table or json", o)
	}
	return nil
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeCATable(w io.Writer, st *api.CAStatus) {
	fmt.Fprintf(w, "CA: %s, trust domain %s, rotation %s\n\n", st.Mode, st.TrustDomain, st.Phase)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOT\tPHASE\tNOT AFTER\tSHA-256")
	for _, r := range st.Roots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Serial, r.Phase, r.NotAfter.UTC().Format(time.RFC3339), r.SHA256)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tSPIFFE ID\tSERIAL\tEXPIRES")
	for _, c := range st.Workloads {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\n", c.Namespace, c.Name, c.ID, c.Serial, c.NotAfter.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}

func writeLeaf(w io.Writer, c api.WorkloadCert) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Workload", c.Namespace+"/"+c.Name)
	row("SPIFFE ID", c.ID)
	row("Principal", c.Principal)
	row("Issuer", c.Issuer)
	row("Serial", c.Serial)
	row("Valid", c.NotBefore.UTC().Format(time.RFC3339)+" to "+c.NotAfter.UTC().Format(time.RFC3339))
	row("Key", c.PublicKey)
	row("Key usage", strings.Join(c.KeyUsage, ", "))
	row("Extended key usage", strings.Join(c.ExtKeyUsage, ", "))
	row("SHA-256", c.SHA256)
	if c.Problem != "" {
		row("Problem", c.Problem)
	}
	tw.Flush()
}
