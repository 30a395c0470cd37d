package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newAuditCmd is a placeholder until the posture engine lands.
func newAuditCmd(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "audit",
		Short:  "Audit manifests or a cluster against CIS and Pod Security Standards",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("audit is not available in this build") },
	}
}
