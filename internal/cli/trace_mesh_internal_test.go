package cli

import (
	"testing"

	"github.com/rampartsec/rampart/internal/proxy"
)

// TestHBONEPort keeps the port trace names for mesh tunnels equal to the
// one the proxy listens on; the CLI does not link the proxy.
func TestHBONEPort(t *testing.T) {
	if hbonePort != proxy.HBONEPort {
		t.Fatalf("hbonePort is %d, proxy.HBONEPort %d", hbonePort, proxy.HBONEPort)
	}
}
