// Package cluster reads the objects `rampart audit --kubeconfig` audits from
// a live cluster and turns them into resource.Objects, so that a cluster and
// a directory of manifests go through the same checks.
package cluster
