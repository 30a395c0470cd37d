package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/posture/cluster"
	"github.com/rampartsec/rampart/internal/resource"
)

// auditFlags are the flags of `rampart audit`.
type auditFlags struct {
	files      []string
	standards  string
	output     string
	failOn     string
	explain    string
	kubeconfig string
	context    string
}

// newAuditCmd returns `rampart audit`, which audits manifests against CIS
// section 5, the Pod Security Standards and Rampart's rules, and scores each
// workload's risk.
func newAuditCmd(s Streams) *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit (-f PATHS|- | --kubeconfig FILE) [flags]",
		Short: "Audit manifests against CIS, Pod Security Standards and Rampart rules",
		Long: `Audit Kubernetes manifests, or a live cluster, against the CIS Kubernetes Benchmark 1.9 (section 5),
the Pod Security Standards (baseline and restricted, as Kubernetes evaluates
them) and Rampart's own rules, and score each workload's risk on KCCSS.

Exit status: 0 when no finding reaches --fail-on (or --fail-on is not set),
1 when one does or the input cannot be read, 2 on a usage error.`,
		Example: `  rampart audit -f deploy/
  rampart audit -f app.yaml --standard pss-restricted --fail-on medium
  kubectl get deploy -A -o yaml | rampart audit -f - -o sarif > rampart.sarif
  rampart audit -f deploy/ --explain Deployment/prod/web
  rampart audit --kubeconfig ~/.kube/config --context prod --fail-on high`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			oneShotGC()
			return runAudit(s, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.files, "filename", "f", nil, "manifest file or directory (recursively), or - for stdin; repeatable")
	fl.StringVar(&f.standards, "standard", "", "comma-separated standards to report: cis, pss-baseline, pss-restricted, rampart (default all)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table, json, sarif or junit")
	fl.StringVar(&f.failOn, "fail-on", "", "exit 1 when a finding is at least this severe: low, medium or high")
	fl.StringVar(&f.explain, "explain", "", "print how the risk score of workload KIND/NAMESPACE/NAME was computed")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "audit a live cluster through this kubeconfig instead of manifests")
	fl.StringVar(&f.context, "context", "", "kubeconfig context for --kubeconfig")
	return cmd
}

func runAudit(s Streams, f auditFlags) error {
	standards, err := posture.ParseStandards(f.standards)
	if err != nil {
		return UsageError("--standard: %v", err)
	}
	var threshold posture.Severity
	if f.failOn != "" {
		if threshold, err = posture.ParseSeverity(f.failOn); err != nil {
			return UsageError("--fail-on: %v", err)
		}
	}
	write, err := auditWriter(f.output, s.Out)
	if err != nil {
		return err
	}
	objs, err := auditInput(s, f)
	if err != nil {
		return err
	}
	rep := posture.Audit(objs, posture.Options{Standards: standards})
	if f.explain != "" {
		risk, ok := rep.Workload(f.explain)
		if !ok {
			return UsageError("--explain %s: no such workload in the input (want KIND/NAMESPACE/NAME of a Pod or controller)", f.explain)
		}
		return posture.WriteExplain(s.Out, risk)
	}
	if err := write(rep); err != nil {
		return err
	}
	if threshold != 0 && rep.Failed(threshold) {
		return failed
	}
	return nil
}

// liveTimeout bounds how long reading a live cluster may take.
const liveTimeout = 2 * time.Minute

// auditInput reads the objects to audit: manifests with -f, or a live
// cluster with --kubeconfig.
func auditInput(s Streams, f auditFlags) ([]*resource.Object, error) {
	switch {
	case f.kubeconfig != "" && len(f.files) > 0:
		return nil, UsageError("give either -f or --kubeconfig, not both")
	case f.context != "" && f.kubeconfig == "":
		return nil, UsageError("--context needs --kubeconfig")
	case f.kubeconfig != "":
		clients, err := cluster.NewClients(f.kubeconfig, f.context)
		if err != nil {
			return nil, &ExitError{Code: 1, Err: err}
		}
		ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
		defer cancel()
		objs, err := cluster.Load(ctx, clients)
		if err != nil {
			return nil, &ExitError{Code: 1, Err: fmt.Errorf("read cluster: %w", err)}
		}
		return objs, nil
	case len(f.files) == 0:
		return nil, UsageError("no input: give -f with a file, a directory or -, or --kubeconfig")
	}
	objs, err := resource.LoadAndDecode(f.files, s.In)
	if err != nil {
		var list resource.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(s.Err, e)
			}
			return nil, failed
		}
		return nil, &ExitError{Code: 1, Err: fmt.Errorf("read input: %w", err)}
	}
	return objs, nil
}

// auditWriter returns the writer for an output format.
func auditWriter(format string, out io.Writer) (func(posture.Report) error, error) {
	switch format {
	case "table", "":
		color := isTerminal(out)
		return func(r posture.Report) error { return posture.WriteTable(out, r, color) }, nil
	case "json":
		return func(r posture.Report) error { return posture.WriteJSON(out, r) }, nil
	case "sarif":
		return func(r posture.Report) error { return posture.WriteSARIF(out, r) }, nil
	case "junit":
		return func(r posture.Report) error { return posture.WriteJUnit(out, r) }, nil
	}
	return nil, UsageError("-o: unknown format %q (want table, json, sarif or junit)", format)
}

// isTerminal reports whether w is a terminal that wants colour: a character
// device, with NO_COLOR unset and TERM not "dumb".
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
