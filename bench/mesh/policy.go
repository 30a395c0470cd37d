package main

import (
	_ "embed"
	"fmt"
	"net/http"

	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/resource"
)

// The benchmark's workloads: a client and a server in namespace bench,
// each with the service account of its name and the label app=<name>.
const (
	benchNamespace = "bench"
	clientName     = "client"
	serverName     = "server"
)

// The request every configuration serves: a read of one item of tenant
// acme. Configuration (c) allows it by the last of its 20 rules.
const (
	benchPath   = "/api/v1/items/42"
	benchTenant = "acme"
	// deniedPath is refused by (c)'s first DENY rule; the set-up checks
	// that (c) answers it with 403, so a policy that silently allows
	// everything cannot pass for the real one.
	deniedPath = "/admin/config"
)

// benchHeader returns the headers of the benchmark's request.
func benchHeader() http.Header {
	return http.Header{"X-Tenant": {benchTenant}, "User-Agent": {"rampart-bench-mesh"}}
}

// policyYAML holds (c)'s AuthorizationPolicies.
//
//go:embed policy.yaml
var policyYAML []byte

// Policy sets selectable with the proxy subcommand's -policy flag.
const (
	policyNone  = "none"  // (b): no policy, mTLS only
	policyRules = "rules" // (c): policy.yaml
)

// newEngine builds the mesh engine of a policy set.
func newEngine(policy string) (*mesh.Engine, error) {
	var objs []*resource.Object
	switch policy {
	case policyNone:
	case policyRules:
		var err error
		if objs, err = resource.DecodeBytes("policy.yaml", policyYAML); err != nil {
			return nil, fmt.Errorf("decode policy: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown policy set %q (want %s or %s)", policy, policyNone, policyRules)
	}
	e, err := mesh.NewEngine(objs, mesh.Options{})
	if err != nil {
		return nil, fmt.Errorf("compile policy: %w", err)
	}
	return e, nil
}

// countRules returns the number of AuthorizationPolicy rules in objs.
func countRules(objs []*resource.Object) int {
	n := 0
	for _, o := range objs {
		if ap, ok := o.Obj.(*resource.AuthorizationPolicy); ok {
			n += len(ap.Spec.Rules)
		}
	}
	return n
}
