//go:build !linux

package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newExecCmd(Streams) *cobra.Command {
	return &cobra.Command{Use: "exec", Hidden: true, RunE: func(*cobra.Command, []string) error {
		return errors.New("exec needs Linux")
	}}
}
