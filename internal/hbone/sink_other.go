//go:build !unix

package hbone

import "syscall"

// tryWrite never writes where raw socket writes are not available: every
// payload is queued and written by Splice.
func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }
