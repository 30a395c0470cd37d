package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newGuardrailCmd is a placeholder until the admission guardrail lands.
func newGuardrailCmd(_ Streams) *cobra.Command {
	return &cobra.Command{
		Use:    "guardrail",
		Short:  "Admission guardrail webhook",
		Hidden: true,
		RunE:   func(*cobra.Command, []string) error { return errors.New("guardrail is not available in this build") },
	}
}
