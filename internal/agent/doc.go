// Package agent is Rampart's node: the standalone `rampart up` process that
// holds the control plane and the agent in one.
//
// It keeps desired state (policies, namespaces) in the store, runs
// workloads as endpoints, resolves policy for them with internal/policy,
// compiles the verdict tables into the eBPF datapath and reports the
// datapath's flow events. Its local API is a root-only unix socket
// (internal/api).
//
// Enforcement outlives the process: programs and maps are pinned, so when
// the node stops or is killed, traffic keeps being decided by the last
// synced tables; on restart the node rebuilds its view from the store and
// the endpoints' state files and rewrites the maps with diffs, adding new
// rows before removing old ones, so there is no moment of open policy.
package agent
