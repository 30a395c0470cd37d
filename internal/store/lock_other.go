//go:build !unix

package store

// lockDir is a no-op where flock(2) does not exist; etcd's own database lock
// still keeps a second instance from starting, though only after it has
// opened its listeners.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
