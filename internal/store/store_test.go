package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/store"
)

// mustEmbedded opens an embedded store in a fresh temporary directory and
// closes it in t.Cleanup.
func mustEmbedded(t testing.TB) *store.Etcd {
	t.Helper()
	s, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: t.TempDir(), UnsafeNoFsync: true})
	if err != nil {
		t.Fatalf("open embedded store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// forEachBackend runs f against a fresh embedded store and a fresh external
// etcd, each in its own subtest.
func forEachBackend(t *testing.T, f func(t *testing.T, s *store.Etcd)) {
	t.Run("embedded", func(t *testing.T) { f(t, mustEmbedded(t)) })
	t.Run("external", func(t *testing.T) { f(t, mustRemote(t)) })
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(k, v string) store.KV { return store.KV{Key: k, Value: []byte(v)} }

func mustApply(t *testing.T, s store.Store, puts []store.KV, deletes []string, conds ...store.Condition) int64 {
	t.Helper()
	rev, err := s.Apply(testContext(t), puts, deletes, conds...)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return rev
}

// dump returns every key=value under prefix, for comparing whole states.
func dump(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	kvs, _, err := s.List(testContext(t), prefix)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Key+"="+string(kv.Value))
	}
	return out
}

func TestGetListDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		if _, err := s.Get(ctx, "/t/missing"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(missing) err = %v, want ErrNotFound", err)
		}
		rev := mustApply(t, s, []store.KV{put("/t/a", "1"), put("/t/b", "2"), put("/u/c", "3")}, nil)
		kv, err := s.Get(ctx, "/t/a")
		if err != nil || string(kv.Value) != "1" || kv.Revision != rev {
			t.Fatalf("Get(/t/a) = %+v, %v; want value 1 at revision %d", kv, err, rev)
		}
		kvs, listRev, err := s.List(ctx, "/t/")
		if err != nil || len(kvs) != 2 || kvs[0].Key != "/t/a" || kvs[1].Key != "/t/b" || listRev < rev {
			t.Fatalf("List(/t/) = %+v at %d, %v", kvs, listRev, err)
		}
		if all, _, _ := s.List(ctx, ""); len(all) != 3 {
			t.Fatalf("List(\"\") = %d keys, want 3", len(all))
		}
		drev, err := s.Delete(ctx, "/t/a")
		if err != nil || drev <= rev {
			t.Fatalf("Delete = %d, %v", drev, err)
		}
		if _, err := s.Delete(ctx, "/t/a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second Delete err = %v, want ErrNotFound", err)
		}
		if got := dump(t, s, "/"); !slices.Equal(got, []string{"/t/b=2", "/u/c=3"}) {
			t.Fatalf("state = %v", got)
		}
	})
}

// TestListPages lists more keys than one range request returns; the pages
// must join into one ordered snapshot.
func TestListPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		const n = 2345
		for i := 0; i < n; i += 100 { // external etcd allows 128 writes per transaction
			var puts []store.KV
			for j := i; j < min(i+100, n); j++ {
				puts = append(puts, put(fmt.Sprintf("/p/%05d", j), "x"))
			}
			mustApply(t, s, puts, nil)
		}
		kvs, _, err := s.List(testContext(t), "/p/")
		if err != nil || len(kvs) != n {
			t.Fatalf("List = %d keys, %v; want %d", len(kvs), err, n)
		}
		for i, kv := range kvs {
			if want := fmt.Sprintf("/p/%05d", i); kv.Key != want {
				t.Fatalf("key %d = %s, want %s", i, kv.Key, want)
			}
		}
	})
}

// TestApplyAllOrNothing checks that a transaction whose precondition fails
// writes nothing, and that the error names the failed condition.
func TestApplyAllOrNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		rev := mustApply(t, s, []store.KV{put("/a/x", "1"), put("/a/y", "1")}, nil)
		before := dump(t, s, "/")

		tests := []struct {
			name    string
			conds   []store.Condition
			wantErr string
		}{
			{"existing key must be missing", []store.Condition{store.KeyMissing("/a/x")}, "/a/x must not exist"},
			{"missing key must exist", []store.Condition{store.KeyExists("/a/none")}, "/a/none must exist"},
			{"stale revision", []store.Condition{store.KeyAtRevision("/a/y", rev-1)}, fmt.Sprintf("/a/y must be at revision %d", rev-1)},
			{"one of several fails", []store.Condition{store.KeyExists("/a/x"), store.KeyMissing("/a/y")}, "/a/y must not exist"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.Apply(ctx,
					[]store.KV{put("/a/x", "2"), put("/a/new", "2")}, []string{"/a/y"}, tt.conds...)
				if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrConflict mentioning %q", err, tt.wantErr)
				}
				var ce *store.ConflictError
				if !errors.As(err, &ce) || len(ce.Failed) != 1 {
					t.Fatalf("err = %#v, want a ConflictError with one failed condition", err)
				}
				if after := dump(t, s, "/"); !slices.Equal(after, before) {
					t.Fatalf("a failed transaction changed the store:\nbefore %v\nafter  %v", before, after)
				}
			})
		}

		// The same writes with conditions that hold apply together.
		rev2 := mustApply(t, s, []store.KV{put("/a/x", "2"), put("/a/new", "2")}, []string{"/a/y"},
			store.KeyAtRevision("/a/x", rev), store.KeyMissing("/a/new"), store.KeyExists("/a/y"))
		if got := dump(t, s, "/"); !slices.Equal(got, []string{"/a/new=2", "/a/x=2"}) {
			t.Fatalf("state = %v", got)
		}
		for _, k := range []string{"/a/x", "/a/new"} {
			if kv, _ := s.Get(ctx, k); kv.Revision != rev2 {
				t.Errorf("%s at revision %d, want the transaction's %d", k, kv.Revision, rev2)
			}
		}
	})
}

func TestApplyRejectsBadInput(t *testing.T) {
	s := mustEmbedded(t)
	ctx := testContext(t)
	tests := []struct {
		name    string
		puts    []store.KV
		deletes []string
		conds   []store.Condition
		wantErr string
	}{
		{"put twice", []store.KV{put("/k", "1"), put("/k", "2")}, nil, nil, "key /k is written twice"},
		{"put and delete", []store.KV{put("/k", "1")}, []string{"/k"}, nil, "key /k is written twice"},
		{"empty key", []store.KV{put("", "1")}, nil, nil, "empty key"},
		{"zero condition", nil, nil, []store.Condition{{}}, "condition on an empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Apply(ctx, tt.puts, tt.deletes, tt.conds...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if got := dump(t, s, ""); len(got) != 0 {
		t.Fatalf("rejected applies wrote %v", got)
	}
}

// TestApplyLarge applies a transaction as big as a directory of manifests,
// beyond etcd's default limit of 128 operations, on the embedded store.
func TestApplyLarge(t *testing.T) {
	s := mustEmbedded(t)
	var puts []store.KV
	for i := range 2000 {
		puts = append(puts, store.KV{Key: fmt.Sprintf("/big/%04d", i), Value: make([]byte, 2048)})
	}
	start := time.Now()
	mustApply(t, s, puts, nil)
	t.Logf("one transaction of %d puts (4 MiB): %v", len(puts), time.Since(start))
	if got := len(dump(t, s, "/big/")); got != 2000 {
		t.Fatalf("stored %d keys, want 2000", got)
	}
}

func TestClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		w := s.Watch(ctx, "/", 0)
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if _, err := s.Get(ctx, "/k"); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Get after Close err = %v, want ErrClosed", err)
		}
		if _, err := s.Apply(ctx, []store.KV{put("/k", "v")}, nil); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Apply after Close err = %v, want ErrClosed", err)
		}
		select {
		case ev, ok := <-w:
			if ok {
				t.Fatalf("watch delivered %+v after Close, want closed channel", ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("watch channel still open 10s after Close")
		}
	})
}
