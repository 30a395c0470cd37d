// Package resource decodes the Kubernetes-shaped objects users bring to
// Rampart: workloads, namespaces and services from k8s.io/api, Kubernetes
// NetworkPolicy, Cilium's CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy,
// and Istio's security policies.
//
// Decoding is strict and all-or-nothing. Every document is checked for
// unknown fields, type mismatches and semantic errors (bad CIDRs, ports out of
// range, bad selector operators, invalid regular expressions, ...), every
// problem is reported with its file, line and field path, and a caller gets
// no objects at all when any document has an error. That is what lets
// `rampart apply` promise that bad input changes nothing.
package resource
