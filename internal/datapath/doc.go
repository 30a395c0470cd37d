// Package datapath is the kernel half of Rampart's network enforcement: it
// loads the eBPF programs built from bpf/datapath.c, pins their maps on
// bpffs, attaches them with TCX to the host side of each endpoint's veth, and
// gives the agent typed access to the maps.
//
// The package has no policy logic of its own. The policy compiler produces
// PolicyEntry and CIDREntry values, the endpoint manager calls SetEndpoint
// and Attach, and the identity allocator calls SetIdentity. Everything the
// kernel decides is then a lookup in those maps, so the same tables that
// `rampart policy trace` prints are the ones enforced.
//
// State lives on bpffs under Options.PinDir: maps are pinned by name and each
// endpoint's TCX links are pinned beside them, so programs stay attached and
// keep enforcing while the agent restarts; Open re-opens the pins rather than
// recreating them. docs/datapath.md describes the map layouts, verdict
// precedence, conntrack semantics and the restart story in full.
//
// Everything that touches the kernel is Linux only; on other systems Open
// returns ErrNotSupported, while the pure helpers (port ranges, deny
// precedence, key validation) work everywhere so that policy tooling can use
// them offline.
package datapath
