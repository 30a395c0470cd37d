// Command rampart is Rampart's single binary: the standalone node, the
// offline policy tools and the CLI. All behaviour lives in internal/cli.
package main

import (
	"os"

	"github.com/rampartsec/rampart/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
