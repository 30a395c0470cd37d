// Package labels holds label sets and the selectors that match them.
//
// A [Set] is the label set of a security identity: a pod's own labels plus
// the labels Rampart derives from its namespace, namespace labels, service
// account and cluster, in the same key scheme as Cilium so that
// CiliumNetworkPolicy selectors written for Cilium mean the same here.
// Kubernetes NetworkPolicy selectors are translated onto the same keys, so one
// matcher serves every policy kind.
package labels
