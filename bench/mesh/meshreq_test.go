package main

import (
	"net/netip"
	"strings"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/proxy"
)

// meshWorkload describes w as policies select it.
func meshWorkload(w proxy.Workload) mesh.Workload {
	return mesh.Workload{Namespace: w.Namespace, Labels: map[string]string{"app": w.Name}, ServiceAccount: w.ServiceAccount}
}

// connRequest is what the engine knows of a connection.
func connRequest(c proxy.Connection) mesh.Request {
	return mesh.Request{
		SourcePrincipal: strings.TrimPrefix(c.SourcePrincipal, "spiffe://"),
		SourceIP:        c.Source.Addr(),
		DestinationIP:   destinationIP(c.Destination, c.Source.Addr()),
		DestinationPort: c.DestinationPort,
		SNI:             c.SNI,
	}
}

// destinationIP is the workload's address of the source's family: the
// proxy tells which workload a tunnel reached, not which of its addresses.
func destinationIP(w proxy.Workload, src netip.Addr) netip.Addr {
	for _, ip := range w.IPs {
		if ip.Is4() == src.Unmap().Is4() {
			return ip
		}
	}
	if len(w.IPs) > 0 {
		return w.IPs[0]
	}
	return netip.Addr{}
}
