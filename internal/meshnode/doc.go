// Package meshnode binds the mesh's parts together on a node: the CA's
// workload certificates (internal/ca), Istio policy (internal/mesh) and the
// L3/L4 and L7 verdicts of NetworkPolicy and CiliumNetworkPolicy
// (internal/policy) become the interfaces the node proxy asks
// (internal/proxy). The proxy stays free of policy and PKI; the agent and
// the mesh benchmark share this binding.
package meshnode
