package resource_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/resource"
)

// FuzzDecode feeds arbitrary bytes to the decoder. Invariants: it never
// panics; it returns objects or an ErrorList, never both; every error names
// the input; and whatever passes validation compiles into policy and can be
// decided, so validation is the only gate a user's input has to pass.
func FuzzDecode(f *testing.F) {
	// Seeds: every golden input (valid documents and near misses), plus
	// shapes that have broken YAML decoders before.
	files, _ := filepath.Glob("testdata/decode/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))                                   // recursive alias
	f.Add([]byte("a: &x {b: 1}\nc: *x\n<<: *x\n"))                // merge key
	f.Add([]byte("---\n---\n"))                                   // empty documents
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, {}]\n")) // bad list items
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","ports":[{"containerPort":1e3}]}]}}`))
	f.Add([]byte("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: c}\nspec: {endpointSelector: {}, ingress: [{fromCIDR: ['::/0']}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := resource.DecodeBytes("fuzz.yaml", data)
		if err != nil {
			if objs != nil {
				t.Fatalf("got %d objects and an error", len(objs))
			}
			var list resource.ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Line < 0 {
					t.Fatalf("error without location: %+v", e)
				}
			}
			return
		}
		for _, o := range objs {
			if o.Kind == "" || o.Name == "" {
				t.Fatalf("object without kind or name: %+v", o)
			}
			_ = o.Line("spec.template.spec.containers[0].securityContext")
		}
		repo, err := policy.Build(context.Background(), objs, nil)
		if err != nil {
			t.Fatalf("validated input does not compile: %v", err)
		}
		eps := repo.Endpoints()
		for _, a := range eps {
			for _, b := range eps {
				for _, proto := range []policy.Protocol{policy.TCP, policy.ICMP} {
					repo.Decide(policy.Flow{Src: policy.Side{Endpoint: a, Identity: a.Identity}, Dst: policy.Side{Endpoint: b, Identity: b.Identity}, Proto: proto, Port: 80})
				}
			}
			repo.Table(a, policy.Ingress)
			repo.Table(a, policy.Egress)
		}
	})
}
