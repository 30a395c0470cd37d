package store

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotFound is returned when a key or object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned by Apply when a precondition does not hold;
	// nothing was written. The error is a *ConflictError naming the
	// conditions that failed.
	ErrConflict = errors.New("precondition failed")
	// ErrCompacted is carried by a watch error event when the revision the
	// watch asked for has been compacted away. The error is a
	// *CompactedError.
	ErrCompacted = errors.New("revision compacted")
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("store closed")
)

// ConflictError lists the preconditions of a transaction that did not hold.
// It matches ErrConflict with errors.Is.
type ConflictError struct {
	Failed []Condition
}

func (e *ConflictError) Error() string {
	s := make([]string, len(e.Failed))
	for i, c := range e.Failed {
		s[i] = c.String()
	}
	return fmt.Sprintf("%v: %s", ErrConflict, strings.Join(s, ", "))
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// CompactedError tells a watcher that the events from Requested up to
// Compacted-1 are gone: etcd compacted its history past them. The watch
// resumes at Compacted, so no later event is lost; a watcher that keeps
// state must re-list to learn what changed in the gap (replaying the events
// that follow on top of a fresh list converges, since they come in order).
// It matches ErrCompacted with errors.Is.
type CompactedError struct {
	Requested int64 // the first revision the watch wanted
	Compacted int64 // the oldest revision still available
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("watch from revision %d: %v up to %d; resuming at %d, re-list to catch up", e.Requested, ErrCompacted, e.Compacted, e.Compacted)
}

// Is makes errors.Is(err, ErrCompacted) true.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }
