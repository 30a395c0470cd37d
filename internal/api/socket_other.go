//go:build !linux

package api

import (
	"context"
	"errors"
	"net"
)

// ErrNotSupported is returned on systems without the node.
var ErrNotSupported = errors.New("api: the rampart node runs on Linux only")

// Listen is not supported off Linux.
func Listen(string) (net.Listener, error) { return nil, ErrNotSupported }

func dialer(path string) func(ctx context.Context, _, _ string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}
