package cli

import "github.com/spf13/cobra"

func newPolicyCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Validate, trace and tabulate network policy offline",
	}
	return cmd
}
