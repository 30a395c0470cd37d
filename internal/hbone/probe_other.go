//go:build !linux

package hbone

import "net"

// writeProbe is not implemented here: no socket can be polled, and the
// control goroutine writes every control frame.
type writeProbe struct{}

func newWriteProbe(net.Conn) *writeProbe { return nil }

func (*writeProbe) writable() bool { return false }
