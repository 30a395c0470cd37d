package testenv

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rampartsec/rampart/internal/netnsexec"
)

// Capture records every frame of one interface through an AF_PACKET
// socket, as tcpdump does, so that tests can look at what actually went
// over the wire (tcpdump itself is not always installed).
type Capture struct {
	fd      int
	mu      sync.Mutex
	frames  [][]byte
	stopped atomic.Bool
	done    chan struct{}
}

// StartCapture starts capturing on ifname in the network namespace at
// nsPath ("" for the test's own). The capture stops at the end of the test
// at the latest.
func StartCapture(t testing.TB, nsPath, ifname string) *Capture {
	t.Helper()
	c := &Capture{done: make(chan struct{})}
	open := func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		// A short receive timeout lets the reader notice Stop.
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000}); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	}
	var err error
	if nsPath == "" {
		err = open()
	} else {
		err = netnsexec.DoPath(nsPath, open)
	}
	if err != nil {
		t.Fatalf("packet capture on %s: %v", ifname, err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for !c.stopped.Load() {
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil || n <= 0 {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, bytes.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Stop() })
	return c
}

// Stop ends the capture and returns the frames seen.
func (c *Capture) Stop() [][]byte {
	if !c.stopped.Swap(true) {
		<-c.done
		unix.Close(c.fd)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
