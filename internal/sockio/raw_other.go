//go:build !unix

package sockio

import "syscall"

// Raw system calls exist only on Unix; elsewhere every read and write
// fails (the proxy, the only user, runs on Linux).
func rawRead(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.EWINDOWS }
func rawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.EWINDOWS }
