// Package sockio reads and writes TCP sockets with raw system calls.
//
// Go's net package enters the scheduler's syscall state for every read and
// write (entersyscall and exitsyscall). When a system call takes longer
// than a sysmon tick (20 µs) while the goroutine's processor has other work
// queued, the runtime hands the processor to another thread; that thread
// and sysmon, which then keeps polling every 20 µs, wake up and sleep
// thousands of times a second. A write to a loopback or veth socket does
// the receiver's TCP processing in the writer's context, and on a virtual
// machine takes tens of microseconds, so a proxy moving small messages
// spends more CPU in those context switches than in its own work: the
// mesh benchmark measured about a third of the proxy's CPU in thread
// switches and sysmon (docs/bench-mesh.md).
//
// Reads and writes of a non-blocking socket never block: they return
// EAGAIN instead. Conn makes them as raw system calls through the
// socket's syscall.RawConn, which keeps the goroutine on its processor for
// their duration, and waits on Go's poller exactly as net does when the
// socket is not ready. Deadlines set on the socket still apply.
package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection whose reads and writes are raw system calls.
// Everything else is the *net.TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The functions handed to the RawConn are made once, not per call
	// (a closure passed through the interface would be allocated every
	// time); their arguments and results travel in these fields, under
	// the direction's lock.
	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	wait    bool // Write: wait for room; TryWrite: do not
	writeFn func(uintptr) bool
}

// New wraps c.
func New(c *net.TCPConn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	sc := &Conn{TCPConn: c, rc: rc}
	sc.readFn = sc.read
	sc.writeFn = sc.write
	return sc, nil
}

// read is the RawConn read function: false (wait on the poller) while the
// socket has nothing.
func (c *Conn) read(fd uintptr) bool {
	c.rn, c.rerrno = rawRead(fd, c.rbuf)
	return c.rerrno != syscall.EAGAIN
}

// write is the RawConn write function: it writes until wbuf is all
// written, the socket is full (then false, to wait, unless !wait) or an
// error.
func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, errno := rawWrite(fd, c.wbuf[c.wn:])
		if errno != 0 {
			c.werrno = errno
			return errno != syscall.EAGAIN || !c.wait
		}
		c.wn += n
	}
	c.werrno = 0
	return true
}

// Read reads into b, waiting on the poller while nothing is there.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf = b
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, waiting on the poller while the socket is full.
func (c *Conn) Write(b []byte) (int, error) {
	n, errno, err := c.writeBuf(b, true)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// TryWrite writes as much of b as fits now and never waits: n < len(b)
// with a nil error means the socket is full.
func (c *Conn) TryWrite(b []byte) (int, error) {
	n, errno, err := c.writeBuf(b, false)
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0 && errno != syscall.EAGAIN:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *Conn) writeBuf(b []byte, wait bool) (int, syscall.Errno, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werrno, c.wait = b, 0, 0, wait
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	return c.wn, c.werrno, err
}

// ReadFrom and WriteTo hide the TCPConn's, which would bypass Read and
// Write (and splice through a pipe with blocking system calls): io.Copy
// then uses this type's Read and Write.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(writerOnly{c}, r) }
func (c *Conn) WriteTo(w io.Writer) (int64, error)  { return io.Copy(w, readerOnly{c}) }

type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

func (c *Conn) opError(op string, err error) error {
	if en, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, en)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
