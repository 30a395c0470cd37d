package main

import (
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/proxy"
)

// newAuthorizer is the node's authorizer (internal/meshnode) for the
// benchmark's one local workload, labelled app=<name> as its pods are,
// with engine's policies and no L3/L4 repository: the benchmark measures
// the mesh layer.
func newAuthorizer(engine *mesh.Engine, local proxy.Workload) *meshnode.Authorizer {
	var a meshnode.Authorizer
	a.Update(meshnode.Snapshot{Mesh: engine, Workloads: map[string]meshnode.Member{
		local.Key(): {Labels: map[string]string{"app": local.Name}, ServiceAccount: local.ServiceAccount, Mesh: true},
	}})
	return &a
}
