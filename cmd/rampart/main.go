// Command rampart is Rampart's command line: the offline policy and
// posture tools and the client of a node. "rampart up" and "rampart down"
// hand over to the node daemon, rampart-node. All behaviour lives in
// internal/cli.
package main

import (
	"os"

	"github.com/rampartsec/rampart/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
