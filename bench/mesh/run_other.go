//go:build !linux

package main

import (
	"context"
	"errors"
)

// run needs Linux: the proxies' CPU and memory are read from /proc, and
// the Rampart proxy serves only there.
func run(context.Context, options) (*report, error) {
	return nil, errors.New("the mesh benchmark needs Linux: it reads CPU and memory from /proc")
}
