// Package endpoint runs workloads of Rampart's standalone node: each
// endpoint is a named network namespace joined to the host by a veth pair,
// addressed from the node's pod CIDRs, routed through the host and
// masqueraded towards everything outside the pod CIDRs, with one process
// started inside it, the way a pod sandbox holds a pod.
//
// A Manager owns one state directory and one instance name. The instance
// prefixes every kernel object it creates (network namespaces, host veths,
// the nftables table), so two Managers with different instances and
// CIDRs run side by side on one machine, and Cleanup can find everything
// of its own even when the state directory is gone.
//
// The lifecycle is Create (network only), then the agent attaches the
// datapath to Endpoint.HostIfIndex, then Start (the workload), Stop and
// Delete. Restore re-adopts endpoints and their processes after the
// Manager itself restarted; it repairs nothing destructively and reports
// endpoints that are broken. docs/endpoint.md describes the naming,
// addressing, routing, masquerading, process model and state files.
//
// The IP address management (IPAM) and the naming rules are pure Go and
// work on every OS; everything that touches the kernel is Linux only, and
// New returns ErrNotSupported elsewhere.
package endpoint
