package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newPolicyCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, trace and tabulate network policy offline",
		Long: `Offline policy tools. They read Kubernetes NetworkPolicy, CiliumNetworkPolicy,
CiliumClusterwideNetworkPolicy, namespaces and workloads from manifests and answer
"can A talk to B, and which rule decides?" with the evaluator the datapath enforces.`,
		Args: cobra.ArbitraryArgs,
		RunE: GroupRunE,
		// Every policy command reads files, answers and exits.
		PersistentPreRun: func(*cobra.Command, []string) { oneShotGC() },
	}
	cmd.AddCommand(newPolicyValidateCmd(s), newPolicyTraceCmd(s), newPolicyMatrixCmd(s))
	return cmd
}

func newPolicyValidateCmd(s Streams) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f PATHS",
		Short: "Report every problem in the manifests; exit 1 if there is one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, objs, err := loadRepository(cmd.Context(), files, s.In, s.Err)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "valid: %d objects, %d workloads, %d identities\n", len(objs), len(repo.Endpoints()), len(repo.Identities()))
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest files or directories, or - for stdin")
	return cmd
}
