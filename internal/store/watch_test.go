package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/store"
)

// next receives one event or fails after a timeout.
func next[E any](t *testing.T, ch <-chan E) E {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	panic("unreachable")
}

func describe(ev store.Event) string {
	switch ev.Type {
	case store.EventPut:
		return fmt.Sprintf("put %s=%s @%d", ev.Key, ev.Value, ev.Revision)
	case store.EventDelete:
		return fmt.Sprintf("delete %s @%d", ev.Key, ev.Revision)
	}
	return fmt.Sprintf("error %v", ev.Err)
}

// TestWatchOrder checks that a watch sees puts and deletes under its prefix,
// and only those, in revision order, with one revision per transaction.
func TestWatchOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		w := s.Watch(ctx, "/w/", 0) // from now: sees every write below
		r0 := mustApply(t, s, []store.KV{put("/w/ready", "1")}, nil)
		if ev := next(t, w); ev.Key != "/w/ready" {
			t.Fatalf("first event %s", describe(ev))
		}
		r1 := mustApply(t, s, []store.KV{put("/w/a", "1"), put("/other/x", "1")}, nil)
		r2 := mustApply(t, s, []store.KV{put("/w/a", "2"), put("/w/b", "1")}, []string{"/w/ready"})
		r3, _ := s.Delete(ctx, "/w/a")
		want := []string{
			fmt.Sprintf("put /w/a=1 @%d", r1),
			fmt.Sprintf("put /w/a=2 @%d", r2),
			fmt.Sprintf("put /w/b=1 @%d", r2),
			fmt.Sprintf("delete /w/ready @%d", r2),
			fmt.Sprintf("delete /w/a @%d", r3),
		}
		var got []string
		for range want {
			got = append(got, describe(next(t, w)))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("events:\n got %q\nwant %q", got, want)
		}
		if r0 >= r1 || r1 >= r2 || r2 >= r3 {
			t.Fatalf("revisions not increasing: %d %d %d %d", r0, r1, r2, r3)
		}
	})
}

// TestWatchResume checks that a watch from a past revision replays exactly
// the changes from there, the way a restarted watcher catches up after a
// List.
func TestWatchResume(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		mustApply(t, s, []store.KV{put("/r/a", "1")}, nil)
		_, listRev, err := s.List(ctx, "/r/")
		if err != nil {
			t.Fatal(err)
		}
		r1 := mustApply(t, s, []store.KV{put("/r/b", "1")}, nil)
		r2, _ := s.Delete(ctx, "/r/a")
		w := s.Watch(ctx, "/r/", listRev+1)
		for _, want := range []string{fmt.Sprintf("put /r/b=1 @%d", r1), fmt.Sprintf("delete /r/a @%d", r2)} {
			if got := describe(next(t, w)); got != want {
				t.Fatalf("event %q, want %q", got, want)
			}
		}
		r3 := mustApply(t, s, []store.KV{put("/r/c", "1")}, nil)
		if got, want := describe(next(t, w)), fmt.Sprintf("put /r/c=1 @%d", r3); got != want {
			t.Fatalf("live event %q, want %q", got, want)
		}
	})
}

// TestWatchCompacted checks that a watch asking for compacted history gets
// a clear ErrCompacted event and then carries on from the oldest revision
// etcd still has, missing nothing after it.
func TestWatchCompacted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *store.Etcd) {
		ctx := testContext(t)
		first := mustApply(t, s, []store.KV{put("/c/a", "1")}, nil)
		mustApply(t, s, []store.KV{put("/c/a", "2")}, nil)
		compactRev := mustApply(t, s, []store.KV{put("/c/b", "1")}, nil)
		if err := s.Compact(ctx, compactRev); err != nil {
			t.Fatalf("compact: %v", err)
		}
		w := s.Watch(ctx, "/c/", first)
		ev := next(t, w)
		var ce *store.CompactedError
		if ev.Type != store.EventError || !errors.Is(ev.Err, store.ErrCompacted) || !errors.As(ev.Err, &ce) {
			t.Fatalf("first event %s, want an ErrCompacted error", describe(ev))
		}
		if ce.Requested != first || ce.Compacted != compactRev {
			t.Fatalf("CompactedError %+v, want requested %d compacted %d", ce, first, compactRev)
		}
		t.Logf("error event: %v", ev.Err)
		// The watch resumes at the compact revision: the change made there
		// and every later one arrive.
		if got, want := describe(next(t, w)), fmt.Sprintf("put /c/b=1 @%d", compactRev); got != want {
			t.Fatalf("after compaction %q, want %q", got, want)
		}
		r := mustApply(t, s, []store.KV{put("/c/c", "1")}, nil)
		if got, want := describe(next(t, w)), fmt.Sprintf("put /c/c=1 @%d", r); got != want {
			t.Fatalf("live event %q, want %q", got, want)
		}
	})
}

// TestWatchCancel checks that cancelling the context closes the channel.
func TestWatchCancel(t *testing.T) {
	s := mustEmbedded(t)
	ctx, cancel := context.WithCancel(t.Context())
	w := s.Watch(ctx, "/", 0)
	cancel()
	select {
	case _, ok := <-w:
		if ok {
			// An event may race the cancel; the channel must close soon after.
			for range w {
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch channel open 10s after cancel")
	}
}

// TestWatchSurvivesServerRestart stops the external etcd under a running
// watch and starts it again: the watch reports the outage and then delivers
// the changes made after the restart, none twice and none lost.
func TestWatchSurvivesServerRestart(t *testing.T) {
	srv := startEtcd(t, nil)
	s, err := srv.open(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testContext(t)
	w := s.Watch(ctx, "/s/", 0)
	r1 := mustApply(t, s, []store.KV{put("/s/a", "1")}, nil)
	if got, want := describe(next(t, w)), fmt.Sprintf("put /s/a=1 @%d", r1); got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
	srv.Stop()
	srv.Restart(t)
	r2 := mustApply(t, s, []store.KV{put("/s/b", "1")}, nil)
	for {
		ev := next(t, w)
		if ev.Type == store.EventError {
			t.Logf("during the restart: %v", ev.Err)
			continue
		}
		if got, want := describe(ev), fmt.Sprintf("put /s/b=1 @%d", r2); got != want {
			t.Fatalf("event after restart %q, want %q", got, want)
		}
		break
	}
}
