// Command rampart-node is Rampart's node daemon: the standalone node's
// control plane and agent ("rampart-node up") and its cleanup
// ("rampart-node down --cleanup"). "rampart up" and "rampart down" hand over
// to it. All behaviour lives in internal/nodecli.
package main

import (
	"os"

	"github.com/rampartsec/rampart/internal/nodecli"
)

func main() {
	os.Exit(nodecli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
