package policy_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/resource"
)

// TestIncrementalMatchesFullBuild applies a random sequence of policy
// upserts and deletes to one repository and checks after each step that it
// decides every pair exactly as a repository built from scratch does. This
// is what lets the node apply one policy change without recomputing
// everything.
func TestIncrementalMatchesFullBuild(t *testing.T) {
	var pool []*resource.Object
	for _, tc := range append(append([]reachCase{}, networkPolicyCases...), ciliumCases...) {
		if tc.policies == "" {
			continue
		}
		objs, err := resource.DecodeBytes("case.yaml", []byte(tc.policies))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pool = append(pool, objs...)
	}
	cluster, err := resource.DecodeBytes("cluster.yaml", []byte(clusterYAML()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo, err := policy.Build(ctx, cluster, nil)
	if err != nil {
		t.Fatal(err)
	}
	current := map[string]*resource.Object{}
	rng := rand.New(rand.NewPCG(1, 2))
	flows := []struct {
		port  uint16
		proto policy.Protocol
	}{{80, policy.TCP}, {81, policy.UDP}, {8, policy.ICMP}}
	for step := 0; step < 60; step++ {
		o := pool[rng.IntN(len(pool))]
		if _, ok := current[o.Key()]; ok && rng.IntN(3) == 0 {
			delete(current, o.Key())
			repo.DeletePolicy(o.Key())
		} else {
			current[o.Key()] = o
			if _, err := repo.UpsertPolicy(o); err != nil {
				t.Fatal(err)
			}
		}
		all := append([]*resource.Object{}, cluster...)
		for _, p := range current {
			all = append(all, p)
		}
		fresh, err := policy.Build(ctx, all, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			for _, a := range allPods {
				for _, b := range allPods {
					got := repo.Decide(policy.Flow{Src: sideOf(t, repo, a), Dst: sideOf(t, repo, b), Proto: f.proto, Port: f.port})
					want := fresh.Decide(policy.Flow{Src: sideOf(t, fresh, a), Dst: sideOf(t, fresh, b), Proto: f.proto, Port: f.port})
					if got.Allowed != want.Allowed || got.Egress.Reason != want.Egress.Reason || got.Ingress.Reason != want.Ingress.Reason {
						t.Fatalf("step %d (%s): %s -> %s %d/%s: incremental says %v (%s / %s), full build says %v (%s / %s)",
							step, o.Ref(), a, b, f.port, f.proto, got.Allowed, got.Egress.Explain(), got.Ingress.Explain(),
							want.Allowed, want.Egress.Explain(), want.Ingress.Explain())
					}
				}
			}
		}
	}
}

func TestUpsertRejectsBadPolicyAndKeepsOld(t *testing.T) {
	repo := mustRepo(t, np("x", "deny", "podSelector: {}\npolicyTypes: [Ingress]\n"))
	objs, err := resource.DecodeBytes("svc.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: x}\nspec: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.UpsertPolicy(objs[0]); err == nil {
		t.Fatal("UpsertPolicy accepted a Service")
	}
	v := repo.Decide(policy.Flow{Src: sideOf(t, repo, "y/a"), Dst: sideOf(t, repo, "x/a"), Proto: policy.TCP, Port: 80})
	if v.Allowed {
		t.Fatal("the existing deny policy was lost")
	}
}
