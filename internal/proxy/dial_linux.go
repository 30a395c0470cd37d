package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/netnsexec"
)

// dialIn connects to dst from inside ns with SocketMark set, so the
// capture rules let it pass. In the proxy's own namespace (netns.None())
// nothing is captured and the socket is not marked, which keeps
// loopback tests and benchmarks free of CAP_NET_ADMIN.
//
// Only the socket is created inside the namespace, which takes a thread
// switch of a few microseconds; the connect runs on the runtime's poller
// like any Go dial, so a slow destination never holds a thread locked in
// the namespace. A socket belongs to the namespace it was created in for
// its whole life.
//
// A valid src address is bound as the source address first. The proxy
// does that in its own namespace, where a workload's addresses are
// loopback addresses that the kernel would not pick by itself, and, with
// transparent, in a workload's namespace to connect to its application
// from a client's address (IP_TRANSPARENT, TransparentMark): the port is
// the kernel's choice, but never src's own, whose tuple a redirected
// connection from that client may hold in conntrack.
func dialIn(ctx context.Context, ns netns.NsHandle, src netip.AddrPort, transparent bool, dst netip.AddrPort) (*net.TCPConn, error) {
	family := unix.AF_INET
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	mark := SocketMark
	if transparent {
		mark = TransparentMark
	}
	var fd int
	mk := func() error {
		var err error
		for attempt := 0; ; attempt++ {
			fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			if transparent {
				level, opt := unix.SOL_IP, unix.IP_TRANSPARENT
				if family == unix.AF_INET6 {
					level, opt = unix.SOL_IPV6, unix.IPV6_TRANSPARENT
				}
				if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
					unix.Close(fd)
					return fmt.Errorf("set IP_TRANSPARENT: %w", err)
				}
			}
			if !src.Addr().IsValid() {
				break
			}
			var sa unix.Sockaddr
			if src.Addr().Is4() {
				sa = &unix.SockaddrInet4{Addr: src.Addr().As4()}
			} else {
				sa = &unix.SockaddrInet6{Addr: src.Addr().As16()}
			}
			if err := unix.Bind(fd, sa); err != nil {
				unix.Close(fd)
				return fmt.Errorf("bind %s: %w", src.Addr(), err)
			}
			if !transparent || attempt == 3 || boundPort(fd) != src.Port() {
				break
			}
			unix.Close(fd) // the client's own port: take another
		}
		if ns == netns.None() {
			return nil
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			unix.Close(fd)
			return fmt.Errorf("set SO_MARK: %w", err)
		}
		return nil
	}
	var err error
	if ns == netns.None() {
		err = mk()
	} else {
		err = netnsexec.Do(ns, mk)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", dst, err)
	}
	c, err := connectFD(ctx, fd, dst)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", dst, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(dst), Err: err})
	}
	return c, nil
}

// boundPort returns the local port of the socket fd, 0 if unknown.
func boundPort(fd int) uint16 {
	switch sa := func() unix.Sockaddr { sa, _ := unix.Getsockname(fd); return sa }().(type) {
	case *unix.SockaddrInet4:
		return uint16(sa.Port)
	case *unix.SockaddrInet6:
		return uint16(sa.Port)
	}
	return 0
}

// connectFD connects the non-blocking socket fd to dst, waiting on the
// poller, and returns it as a *net.TCPConn. It takes ownership of fd.
func connectFD(ctx context.Context, fd int, dst netip.AddrPort) (*net.TCPConn, error) {
	f := os.NewFile(uintptr(fd), "tcp") // non-blocking: registered with the poller
	defer f.Close()
	var sa unix.Sockaddr
	if dst.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return nil, err
	}
	switch {
	case cerr == nil:
	case errors.Is(cerr, unix.EINPROGRESS):
		if dl, ok := ctx.Deadline(); ok {
			f.SetWriteDeadline(dl)
		}
		stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
		var soErr error
		err := rc.Write(func(fd uintptr) bool {
			// Writable means the connect finished, one way or the
			// other; SO_ERROR says which, getpeername confirms success
			// (the same dance as the net package).
			v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
			if err != nil {
				soErr = err
				return true
			}
			switch e := unix.Errno(v); e {
			case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
				return false
			case 0, unix.EISCONN:
				if _, err := unix.Getpeername(int(fd)); err != nil {
					if errors.Is(err, unix.ENOTCONN) {
						return false
					}
					soErr = err
				}
				return true
			default:
				soErr = e
				return true
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if soErr != nil {
			return nil, soErr
		}
	default:
		return nil, cerr
	}
	c, err := net.FileConn(f) // dups fd; f is closed on return
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socket became %T", c)
	}
	return tc, nil
}
