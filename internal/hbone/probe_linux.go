package hbone

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeProbe tells whether a small write to a socket would complete at
// once, with a zero-timeout poll. Linux reports a TCP socket writable
// (POLLOUT) only while its send buffer has free space (and at least a
// third of it free), and a write of less than a segment then never waits:
// so a control frame, a TLS record of a few dozen bytes, goes through
// without blocking. Its fields are used under the connection's wmu.
type writeProbe struct {
	rc    syscall.RawConn
	fn    func(uintptr) bool // p.poll, made once: a method value made per call would allocate
	pfd   unix.PollFd
	ts    unix.Timespec // zero: the poll returns at once
	ready bool
}

// newWriteProbe returns a probe for the socket under nc (a TCP connection,
// a *sockio.Conn, or a *tls.Conn on one), or nil if there is none.
func newWriteProbe(nc net.Conn) *writeProbe {
	// A *tls.Conn writes each frame as one record to the connection
	// it wraps; look through it (and any such wrapper) for the socket.
	for range 4 {
		switch c := nc.(type) {
		case syscall.Conn:
			rc, err := c.SyscallConn()
			if err != nil {
				return nil
			}
			p := &writeProbe{rc: rc}
			p.fn = p.poll
			return p
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// poll is the RawConn function: one ppoll(2) for POLLOUT that does not
// wait, made as a raw system call like package sockio's reads and writes.
func (p *writeProbe) poll(fd uintptr) bool {
	p.pfd = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	_, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&p.pfd)), 1, uintptr(unsafe.Pointer(&p.ts)), 0, 0, 0)
	// POLLOUT, or POLLERR or POLLHUP, after which a write fails at once.
	p.ready = errno == 0 && p.pfd.Revents != 0
	return true
}

// writable reports whether a small write would not block.
func (p *writeProbe) writable() bool {
	if err := p.rc.Write(p.fn); err != nil {
		return true // the socket is closed: a write fails at once
	}
	return p.ready
}
