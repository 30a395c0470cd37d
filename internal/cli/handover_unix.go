//go:build unix

package cli

import (
	"fmt"
	"os"
	"syscall"
)

// handOver replaces this process with bin; it returns only on failure.
func handOver(bin string, argv []string) error {
	if err := syscall.Exec(bin, argv, os.Environ()); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	return nil
}
