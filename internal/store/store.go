package store

import (
	"context"
	"fmt"

	"github.com/rampartsec/rampart/internal/resource"
)

// Store is the key-value interface every Rampart component uses. Keys are
// strings (by convention absolute paths under /rampart/v1/), values are
// opaque bytes. Every write gets a revision, a number that grows with each
// transaction across the whole store; watches resume from revisions.
//
// Both back ends, [OpenEmbedded] and [OpenRemote], are etcd, so revisions,
// transactions and watches behave the same in both.
type Store interface {
	// Get returns the value of key, or an error matching ErrNotFound.
	Get(ctx context.Context, key string) (KV, error)
	// List returns every key under prefix in key order, with the store
	// revision the list was read at: a watch from that revision + 1 misses
	// nothing that happened after the list.
	List(ctx context.Context, prefix string) ([]KV, int64, error)
	// Apply writes puts and removes deletes in one etcd transaction, if and
	// only if every condition holds. It is all-or-nothing: on any error
	// nothing changed. A failed condition gives an error matching
	// ErrConflict. Deleting a key that does not exist is not an error. It
	// returns the revision of the transaction.
	Apply(ctx context.Context, puts []KV, deletes []string, conds ...Condition) (int64, error)
	// Delete removes key and returns the revision of the deletion, or an
	// error matching ErrNotFound when there was no such key.
	Delete(ctx context.Context, key string) (int64, error)
	// Watch streams the changes under prefix, in revision order, from
	// fromRevision (0 means "from now"). The channel is closed when ctx is
	// done or the store is closed. Errors arrive as events of type
	// EventError and the watch goes on: after a compaction (ErrCompacted) it
	// resumes at the oldest revision etcd still has.
	Watch(ctx context.Context, prefix string, fromRevision int64) <-chan Event
	// Close releases the store. For the embedded back end it also stops
	// etcd.
	Close() error

	// PutObjects stores objs, Kubernetes-shaped, in one transaction: all of
	// them or, on any error, none. This is what lets `rampart apply`
	// promise no partial apply.
	PutObjects(ctx context.Context, objs []*resource.Object) error
	// DeleteObjects deletes the objects objs name (only their API group,
	// kind, namespace and name count) in one transaction. Every one must
	// exist: if any does not, nothing is deleted and the error, matching
	// ErrNotFound, names the missing ones.
	DeleteObjects(ctx context.Context, objs []*resource.Object) error
	// ListObjects returns the stored objects of the given kinds (all kinds
	// if none is given) in key order, decoded and validated as user input
	// is, with the revision they were read at.
	ListObjects(ctx context.Context, kinds ...string) ([]*resource.Object, int64, error)
	// WatchObjects follows the stored objects of the given kinds (all if
	// none is given) from fromRevision (0: from now), as Watch does for
	// keys.
	WatchObjects(ctx context.Context, fromRevision int64, kinds ...string) <-chan ObjectEvent
}

// KV is one key and its value.
type KV struct {
	Key   string
	Value []byte
	// Revision is the revision that last modified the key; reads set it,
	// writes ignore it.
	Revision int64
}

// EventType says what an Event reports.
type EventType int

const (
	// EventPut reports that a key was created or changed.
	EventPut EventType = iota + 1
	// EventDelete reports that a key was removed.
	EventDelete
	// EventError reports a watch error; the watch continues.
	EventError
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventError:
		return "error"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a watch. Events of one transaction share a
// revision.
type Event struct {
	Type     EventType
	Key      string
	Value    []byte // the new value; nil for deletes and errors
	Revision int64  // the revision of the change
	Err      error  // set for EventError only
}

// Condition is a precondition of Apply on one key. Build one with
// KeyMissing, KeyExists or KeyAtRevision.
type Condition struct {
	key string
	op  condOp
	rev int64
}

type condOp int

const (
	condMissing condOp = iota + 1
	condExists
	condRevision
)

// KeyMissing holds when key does not exist: create-only writes.
func KeyMissing(key string) Condition { return Condition{key: key, op: condMissing} }

// KeyExists holds when key exists.
func KeyExists(key string) Condition { return Condition{key: key, op: condExists} }

// KeyAtRevision holds when key was last modified at rev (the KV.Revision of
// an earlier read): optimistic concurrency for read-modify-write.
func KeyAtRevision(key string, rev int64) Condition {
	return Condition{key: key, op: condRevision, rev: rev}
}

// Key returns the key the condition is about.
func (c Condition) Key() string { return c.key }

func (c Condition) String() string {
	switch c.op {
	case condMissing:
		return c.key + " must not exist"
	case condExists:
		return c.key + " must exist"
	case condRevision:
		return fmt.Sprintf("%s must be at revision %d", c.key, c.rev)
	}
	return c.key + ": invalid condition"
}
