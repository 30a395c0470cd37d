package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Backoff between attempts to re-establish a broken watch.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// Watch implements Store.
//
// The watch remembers the revision after the last event it delivered and
// re-establishes itself from there whenever etcd ends it, so a watcher never
// sees an event twice and, short of a compaction, never misses one. With
// fromRevision 0 the start is pinned, before Watch returns, to the revision
// after the store's current one: every change made after Watch returns is
// seen, however long etcd takes to set the watch up.
func (s *Etcd) Watch(ctx context.Context, prefix string, fromRevision int64) <-chan Event {
	if fromRevision <= 0 && !s.closed() {
		// If this read fails, the watch pins its start when etcd creates it.
		if resp, err := s.cli.Get(ctx, "/rampart/", clientv3.WithCountOnly()); err == nil {
			fromRevision = resp.Header.Revision + 1
		}
	}
	out := make(chan Event)
	go s.watch(ctx, prefix, fromRevision, out)
	return out
}

func (s *Etcd) watch(ctx context.Context, prefix string, next int64, out chan<- Event) {
	defer close(out)
	send := func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
		case <-s.done:
		}
		return false
	}
	delay := watchRetryMin
	for ctx.Err() == nil && !s.closed() {
		ok, progressed, err := s.watchOnce(ctx, prefix, &next, send)
		if !ok {
			return
		}
		if progressed {
			delay = watchRetryMin
		}
		if err != nil && ctx.Err() == nil && !s.closed() {
			if !send(Event{Type: EventError, Revision: next, Err: err}) {
				return
			}
		}
		if errors.Is(err, ErrCompacted) {
			continue // resume at once from the compact revision
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
		delay = min(2*delay, watchRetryMax)
	}
}

// watchOnce runs one etcd watch until it ends. It advances *next past every
// event delivered and returns ok=false when the consumer went away,
// progressed when it delivered something, and the error that ended the
// watch, if any.
func (s *Etcd) watchOnce(ctx context.Context, prefix string, next *int64, send func(Event) bool) (ok, progressed bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	key, opts := prefix, []clientv3.OpOption{clientv3.WithCreatedNotify()}
	if prefix == "" {
		key, opts = "\x00", append(opts, clientv3.WithFromKey()) // every key
	} else {
		opts = append(opts, clientv3.WithPrefix())
	}
	if *next > 0 {
		opts = append(opts, clientv3.WithRev(*next))
	}
	for resp := range s.cli.Watch(wctx, key, opts...) {
		if resp.CompactRevision != 0 {
			cerr := &CompactedError{Requested: *next, Compacted: resp.CompactRevision}
			*next = resp.CompactRevision
			return true, progressed, cerr
		}
		if err := resp.Err(); err != nil {
			return true, progressed, fmt.Errorf("watch %s: %w", prefix, err)
		}
		if resp.Created && *next == 0 {
			*next = resp.Header.Revision + 1
		}
		for _, ev := range resp.Events {
			e := Event{Type: EventPut, Key: string(ev.Kv.Key), Value: ev.Kv.Value, Revision: ev.Kv.ModRevision}
			if ev.Type == clientv3.EventTypeDelete {
				e.Type, e.Value = EventDelete, nil
			}
			if !send(e) {
				return false, progressed, nil
			}
			progressed = true
			*next = ev.Kv.ModRevision + 1
		}
	}
	if ctx.Err() != nil || s.closed() {
		return false, progressed, nil
	}
	return true, progressed, fmt.Errorf("watch %s: ended by etcd", prefix)
}
