package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/store"
)

// benchBackends are the stores the benchmarks compare: the embedded one
// with fsync (as `rampart up` runs it) and without, and an external etcd
// (started with --unsafe-no-fsync).
func benchBackends(b *testing.B, f func(b *testing.B, s *store.Etcd)) {
	for _, fsync := range []bool{true, false} {
		name := "embedded"
		if !fsync {
			name += "-nofsync"
		}
		b.Run(name, func(b *testing.B) {
			s, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: b.TempDir(), UnsafeNoFsync: !fsync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			f(b, s)
		})
	}
	b.Run("external-nofsync", func(b *testing.B) { f(b, mustRemote(b)) })
}

func BenchmarkOpenEmbedded(b *testing.B) {
	for b.Loop() {
		s, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		s.Close()
		b.ReportMetric(float64(time.Since(start).Microseconds()), "close-µs")
	}
}

// BenchmarkApply measures one small transaction: a put with a condition.
func BenchmarkApply(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Etcd) {
		ctx := context.Background()
		i := 0
		for b.Loop() {
			key := fmt.Sprintf("/bench/%d", i)
			if _, err := s.Apply(ctx, []store.KV{{Key: key, Value: []byte("value")}}, nil, store.KeyMissing(key)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkPutObjects measures one apply of the fixture's objects (every
// kind Rampart reads), encoding included.
func BenchmarkPutObjects(b *testing.B) {
	objs := validObjects(b)
	benchBackends(b, func(b *testing.B, s *store.Etcd) {
		ctx := context.Background()
		for b.Loop() {
			if err := s.PutObjects(ctx, objs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAllocate measures allocating a new identity: two reads and one
// compare-and-swap transaction.
func BenchmarkAllocate(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Etcd) {
		ctx := context.Background()
		a := store.NewIdentityAllocator(s)
		i := 0
		for b.Loop() {
			if _, err := a.Allocate(ctx, workload(fmt.Sprint(i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
