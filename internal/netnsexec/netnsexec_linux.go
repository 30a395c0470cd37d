package netnsexec

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into ns and returns its error.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("read the current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to the original network namespace: %w", err))
			return // the thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// DoPath runs fn in the network namespace bind-mounted at path.
func DoPath(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	if err := Do(ns, fn); err != nil {
		return fmt.Errorf("in network namespace %s: %w", path, err)
	}
	return nil
}

// New creates an anonymous network namespace and returns a handle to it,
// leaving the caller's thread in its own namespace (netns.New switches the
// thread that calls it). The namespace lives as long as a handle to it or
// anything inside it.
func New() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			c <- result{err: fmt.Errorf("read the current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			c <- result{err: fmt.Errorf("create network namespace: %w", err)}
			return
		}
		if err := netns.Set(orig); err != nil {
			ns.Close()
			c <- result{err: fmt.Errorf("return to the original network namespace: %w", err)}
			return // the thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		c <- result{ns: ns}
	}()
	r := <-c
	return r.ns, r.err
}
