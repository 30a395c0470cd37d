//go:build !unix

package cli

import "errors"

func handOver(string, []string) error {
	return errors.New("the Rampart node runs on Linux only")
}
