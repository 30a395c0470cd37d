package store_test

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/resource"
	"github.com/rampartsec/rampart/internal/store"
)

// validObjects decodes the resource package's fixture with one object of
// every kind.
func validObjects(t testing.TB) []*resource.Object {
	t.Helper()
	const path = "../resource/testdata/decode/valid-all-kinds.yaml"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := resource.DecodeBytes(path, data)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return objs
}

// withoutStatus returns o's typed object with its status cleared, which is
// what the store keeps.
func withoutStatus(o *resource.Object) any {
	v := reflect.ValueOf(o.Obj).Elem()
	cp := reflect.New(v.Type()).Elem()
	cp.Set(v)
	if st := cp.FieldByName("Status"); st.IsValid() {
		st.SetZero()
	}
	return cp.Addr().Interface()
}

func sameObject(t *testing.T, got, want *resource.Object) {
	t.Helper()
	if got.APIVersion != want.APIVersion || got.Kind != want.Kind || got.Namespace != want.Namespace || got.Name != want.Name {
		t.Errorf("%s came back as %s %s", want.Ref(), got.APIVersion, got.Ref())
	}
	if w := withoutStatus(want); !reflect.DeepEqual(got.Obj, w) {
		gj, _ := json.Marshal(got.Obj)
		wj, _ := json.Marshal(w)
		t.Errorf("%s changed in the store:\n got %s\nwant %s", want.Ref(), gj, wj)
	}
}

// TestObjectRoundTrip checks decode(encode(o)) == o, status aside, for every
// kind of the fixture, and that the stored form is Kubernetes-shaped.
func TestObjectRoundTrip(t *testing.T) {
	objs := validObjects(t)
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.Kind] = true
		t.Run(o.Kind, func(t *testing.T) {
			data, err := store.EncodeObject(o)
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(data, &top); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"apiVersion", "kind", "metadata"} {
				if _, ok := top[f]; !ok {
					t.Errorf("stored form has no %s: %s", f, data)
				}
			}
			if _, ok := top["status"]; ok {
				t.Errorf("stored form keeps status: %s", data)
			}
			if strings.Contains(string(top["metadata"]), "null") {
				t.Errorf("stored metadata has nulls: %s", top["metadata"])
			}
			key := store.RefOf(o).Key()
			back, err := store.DecodeObject(key, data)
			if err != nil {
				t.Fatalf("decode stored form: %v\n%s", err, data)
			}
			if back.Source.File != "store:"+key {
				t.Errorf("source %s, want store:%s", back.Source, key)
			}
			sameObject(t, back, o)
		})
	}
	if len(kinds) < 10 {
		t.Fatalf("fixture has only %d kinds", len(kinds))
	}
}

func TestObjectKeys(t *testing.T) {
	tests := []struct {
		apiVersion, kind, ns, name string
		want                       string
	}{
		{"v1", "Namespace", "", "shop", "/rampart/v1/objects/core/Namespace/_cluster/shop"},
		{"v1", "Pod", "shop", "web", "/rampart/v1/objects/core/Pod/shop/web"},
		{"networking.k8s.io/v1", "NetworkPolicy", "shop", "deny", "/rampart/v1/objects/networking.k8s.io/NetworkPolicy/shop/deny"},
		{"security.istio.io/v1beta1", "PeerAuthentication", "shop", "strict", "/rampart/v1/objects/security.istio.io/PeerAuthentication/shop/strict"},
		{"cilium.io/v2", "CiliumClusterwideNetworkPolicy", "", "all", "/rampart/v1/objects/cilium.io/CiliumClusterwideNetworkPolicy/_cluster/all"},
	}
	for _, tt := range tests {
		o := &resource.Object{APIVersion: tt.apiVersion, Kind: tt.kind, Namespace: tt.ns, Name: tt.name}
		r := store.RefOf(o)
		if got := r.Key(); got != tt.want {
			t.Errorf("key of %s = %s, want %s", o.Ref(), got, tt.want)
		}
		if back, err := store.ParseKey(tt.want); err != nil || back != r {
			t.Errorf("ParseKey(%s) = %+v, %v; want %+v", tt.want, back, err, r)
		}
		if r.String() != o.Ref() {
			t.Errorf("Ref.String() = %s, want %s", r, o.Ref())
		}
	}
	for _, bad := range []string{"/rampart/v1/objects/core/Pod/x", "/other/core/Pod/a/b", "/rampart/v1/objects/core/Pod/a/b/c", "/rampart/v1/objects/core//a/b"} {
		if _, err := store.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%s) succeeded", bad)
		}
	}
}

func refs(objs []*resource.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Ref())
	}
	return out
}

// TestObjects stores, lists, filters and deletes the fixture's objects on
// both back ends.
func TestObjects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		objs := validObjects(t)
		if err := s.PutObjects(ctx, objs); err != nil {
			t.Fatalf("put: %v", err)
		}
		all, rev, err := s.ListObjects(ctx)
		if err != nil || len(all) != len(objs) || rev == 0 {
			t.Fatalf("list = %d objects at %d, %v; want %d", len(all), rev, err, len(objs))
		}
		byRef := map[string]*resource.Object{}
		for _, o := range all {
			byRef[o.Ref()] = o
		}
		for _, o := range objs {
			if got, ok := byRef[o.Ref()]; !ok {
				t.Errorf("%s not listed", o.Ref())
			} else {
				sameObject(t, got, o)
			}
		}

		pols, _, err := s.ListObjects(ctx, "NetworkPolicy", "CiliumClusterwideNetworkPolicy")
		if err != nil {
			t.Fatal(err)
		}
		if len(pols) != 2 {
			t.Errorf("policies = %v, want the fixture's two", refs(pols))
		}
		for _, p := range pols {
			if p.Kind != "NetworkPolicy" && p.Kind != "CiliumClusterwideNetworkPolicy" {
				t.Errorf("kind filter let through %s", p.Ref())
			}
		}

		// Deleting a missing object with existing ones deletes nothing.
		ghost := &resource.Object{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "ghost"}
		err = s.DeleteObjects(ctx, []*resource.Object{objs[0], ghost})
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "Pod/shop/ghost") {
			t.Fatalf("delete with a missing object: err = %v, want ErrNotFound naming Pod/shop/ghost", err)
		}
		if after, _, _ := s.ListObjects(ctx); len(after) != len(objs) {
			t.Fatalf("a failed delete removed objects: %d left of %d", len(after), len(objs))
		}
		if err := s.DeleteObjects(ctx, objs[:2]); err != nil {
			t.Fatalf("delete: %v", err)
		}
		after, _, _ := s.ListObjects(ctx)
		if len(after) != len(objs)-2 || slices.Contains(refs(after), objs[0].Ref()) {
			t.Fatalf("after delete: %v", refs(after))
		}
	})
}

// TestPutObjectsAllOrNothing checks that one bad object keeps every other
// object of the same apply out of the store.
func TestPutObjectsAllOrNothing(t *testing.T) {
	s := mustEmbedded(t)
	ctx := testContext(t)
	objs := validObjects(t)
	bad := *objs[1]
	bad.Obj = nil
	dup := objs[2]
	for name, in := range map[string][]*resource.Object{
		"object without a body": append(slices.Clone(objs), &bad),
		"object given twice":    append(slices.Clone(objs), dup),
		"name with a slash":     append(slices.Clone(objs), &resource.Object{APIVersion: "v1", Kind: "Namespace", Name: "a/b", Obj: objs[0].Obj}),
	} {
		if err := s.PutObjects(ctx, in); err == nil {
			t.Errorf("%s: PutObjects succeeded", name)
		}
	}
	if got, _, _ := s.ListObjects(ctx); len(got) != 0 {
		t.Fatalf("failed puts stored %v", refs(got))
	}
}

// TestListObjectsRejectsCorrupt checks that a stored object that does not
// validate is reported with its store key, like a bad input file.
func TestListObjectsRejectsCorrupt(t *testing.T) {
	s := mustEmbedded(t)
	key := "/rampart/v1/objects/networking.k8s.io/NetworkPolicy/shop/bad"
	mustApply(t, s, []store.KV{put(key, `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"bad","namespace":"shop"},"spec":{"podSelector":{},"bogus":1}}`)}, nil)
	_, _, err := s.ListObjects(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "store:"+key) || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("err = %v, want an unknown-field error naming store:%s", err, key)
	}
	// Stored under another object's key.
	other := "/rampart/v1/objects/networking.k8s.io/NetworkPolicy/shop/other"
	mustApply(t, s, []store.KV{put(other, `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"shop"},"spec":{"podSelector":{}}}`)}, []string{key})
	if _, _, err := s.ListObjects(testContext(t)); err == nil || !strings.Contains(err.Error(), "whose key is") {
		t.Fatalf("err = %v, want a key mismatch", err)
	}
}

// TestWatchObjects follows object puts and deletes, decoded.
func TestWatchObjects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		objs := validObjects(t)
		var np *resource.Object
		for _, o := range objs {
			if o.Kind == "NetworkPolicy" {
				np = o
			}
		}
		w := s.WatchObjects(ctx, 0, "NetworkPolicy")
		if err := s.PutObjects(ctx, objs); err != nil {
			t.Fatal(err)
		}
		ev := next(t, w)
		if ev.Type != store.EventPut || ev.Object == nil || ev.Ref != store.RefOf(np) {
			t.Fatalf("event %+v, want a put of %s", ev, np.Ref())
		}
		sameObject(t, ev.Object, np)
		if err := s.DeleteObjects(ctx, []*resource.Object{objs[0], np}); err != nil {
			t.Fatal(err)
		}
		ev = next(t, w)
		if ev.Type != store.EventDelete || ev.Object != nil || ev.Ref != store.RefOf(np) {
			t.Fatalf("event %+v, want a delete of %s", ev, np.Ref())
		}
		// A corrupt object arrives as an error event, and the watch goes on.
		key := store.RefOf(np).Key()
		mustApply(t, s, []store.KV{put(key, `{"kind":`)}, nil)
		if ev := next(t, w); ev.Type != store.EventError || ev.Err == nil || !strings.Contains(ev.Err.Error(), "store:"+key) {
			t.Fatalf("event %+v, want an error naming store:%s", ev, key)
		}
		if err := s.PutObjects(ctx, []*resource.Object{np}); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, w); ev.Type != store.EventPut {
			t.Fatalf("event %+v after an error, want a put", ev)
		}
	})
}
