package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/
// ip6_tables.h, which golang.org/x/sys/unix does not define. It has the
// same value as SO_ORIGINAL_DST but is asked at SOL_IPV6.
const ip6tSoOriginalDst = 80

// originalDst returns where a redirected connection was going before the
// capture rules sent it to the proxy: conntrack keeps the original tuple,
// and SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6) reads it.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(interface {
		net.Conn
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T is not a TCP connection", c)
	}
	local, err := netip.ParseAddrPort(tc.LocalAddr().String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	level, opt := unix.SOL_IP, unix.SO_ORIGINAL_DST
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		level, opt = unix.SOL_IPV6, ip6tSoOriginalDst
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	var (
		buf  [unix.SizeofSockaddrInet6]byte
		n    = uint32(len(buf))
		serr syscall.Errno
	)
	err = rc.Control(func(fd uintptr) {
		_, _, serr = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, uintptr(level), uintptr(opt),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	})
	if err == nil && serr != 0 {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: getsockopt: %w", err)
	}
	return parseSockaddr(buf[:min(int(n), len(buf))])
}

// parseSockaddr decodes a struct sockaddr_in or sockaddr_in6 as the
// kernel writes it: family in host byte order, port in network byte
// order.
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("sockaddr of %d bytes", len(b))
	}
	family := *(*uint16)(unsafe.Pointer(&b[0]))
	switch family {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in of %d bytes", len(b))
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), uint16(b[2])<<8|uint16(b[3])), nil
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, fmt.Errorf("sockaddr_in6 of %d bytes", len(b))
		}
		a := netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		return netip.AddrPortFrom(a, uint16(b[2])<<8|uint16(b[3])), nil
	}
	return netip.AddrPort{}, fmt.Errorf("sockaddr family %d", family)
}
