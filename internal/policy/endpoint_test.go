package policy_test

import (
	"context"
	"testing"

	"github.com/rampartsec/rampart/internal/policy"
)

// TestLiveEndpoints checks the node's path: endpoints added one by one
// after policies, a namespace relabelled, an endpoint removed.
func TestLiveEndpoints(t *testing.T) {
	ctx := context.Background()
	repo := mustRepo(t, np("x", "from-team-a", `
podSelector: {matchLabels: {pod: a}}
ingress:
- from:
  - namespaceSelector: {matchLabels: {team: a}}
`))
	web := &policy.Endpoint{Kind: "Endpoint", Namespace: "q", Name: "web", Labels: map[string]string{"app": "web"}}
	if _, err := repo.UpsertEndpoint(ctx, web); err != nil {
		t.Fatal(err)
	}
	xa := sideOf(t, repo, "x/a")
	flow := func() bool {
		return repo.Decide(policy.Flow{Src: policy.Side{Endpoint: web, Identity: web.Identity}, Dst: xa, Proto: policy.TCP, Port: 80}).Allowed
	}
	if flow() {
		t.Fatal("q/web reached x/a before its namespace had team=a")
	}
	changed, err := repo.SetNamespace(ctx, "q", map[string]string{"team": "a"})
	if err != nil || !changed {
		t.Fatalf("SetNamespace = %v, %v; want an identity change", changed, err)
	}
	if !flow() {
		t.Fatal("q/web cannot reach x/a after its namespace got team=a")
	}
	in := repo.Table(xa.Endpoint, policy.Ingress)
	if ok, _ := in.Lookup(policy.PeerInfo{Identity: web.Identity}, policy.TCP, 80); !ok {
		t.Fatal("x/a's ingress table does not admit q/web's new identity")
	}
	repo.DeleteEndpoint("Endpoint", "q", "web")
	if _, err := repo.Lookup("q/web"); err == nil {
		t.Fatal("deleted endpoint still found")
	}
}
