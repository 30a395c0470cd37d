package proxy_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/proxy"
)

func sockaddr4(a netip.AddrPort) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], a.Port())
	ip := a.Addr().As4()
	copy(b[4:], ip[:])
	return b
}

func sockaddr6(a netip.AddrPort) []byte {
	b := make([]byte, 28)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], a.Port())
	ip := a.Addr().As16()
	copy(b[8:], ip[:])
	return b
}

func TestParseSockaddr(t *testing.T) {
	for _, want := range []string{"10.1.2.3:8080", "[fd00::7]:443", "1.2.3.4:65535"} {
		ap := netip.MustParseAddrPort(want)
		var b []byte
		if ap.Addr().Is4() {
			b = sockaddr4(ap)
		} else {
			b = sockaddr6(ap)
		}
		got, err := proxy.ParseSockaddr(b)
		if err != nil || got != ap {
			t.Errorf("ParseSockaddr(%s) = %v, %v", want, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, sockaddr4(netip.MustParseAddrPort("1.2.3.4:5"))[:6], sockaddr6(netip.MustParseAddrPort("[::1]:5"))[:20], {99, 0, 0, 0, 0, 0, 0, 0}} {
		if got, err := proxy.ParseSockaddr(bad); err == nil {
			t.Errorf("ParseSockaddr(%x) = %v, want an error", bad, got)
		}
	}
}

// FuzzParseSockaddr: whatever the kernel (or a bug) hands back, the
// decoder never panics and returns either an error or a valid address.
func FuzzParseSockaddr(f *testing.F) {
	f.Add(sockaddr4(netip.MustParseAddrPort("10.0.0.1:80")))        // sockaddr_in
	f.Add(sockaddr6(netip.MustParseAddrPort("[fd00::1]:443")))      // sockaddr_in6
	f.Add(sockaddr6(netip.MustParseAddrPort("[::ffff:1.2.3.4]:1"))) // mapped: unmapped
	f.Add([]byte{10, 0})                                            // family only
	f.Fuzz(func(t *testing.T, b []byte) {
		ap, err := proxy.ParseSockaddr(b)
		if err == nil && !ap.Addr().IsValid() {
			t.Fatalf("%x: no error and no address", b)
		}
	})
}
