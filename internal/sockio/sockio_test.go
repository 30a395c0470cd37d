package sockio_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/sockio"
)

// pair returns a sockio.Conn and the plain other end of a loopback TCP
// connection.
func pair(t *testing.T) (*sockio.Conn, *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := l.AcceptTCP()
		accepted <- c
	}()
	c, err := net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	sc, err := sockio.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close(); peer.Close() })
	return sc, peer
}

func TestReadWrite(t *testing.T) {
	c, peer := pair(t)
	// More than the socket buffers hold, so that Write has to wait on the
	// poller for room and Read for data.
	payload := make([]byte, 16<<20)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(peer)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("peer read %d of %d bytes, err %v", len(got), len(payload), err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	go func() {
		peer.Write(payload)
		peer.CloseWrite()
	}()
	got, err = io.ReadAll(c)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d of %d bytes, err %v", len(got), len(payload), err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF = %d, %v", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	c, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a timeout net.Error", err)
	}
}

func TestTryWriteNeverWaits(t *testing.T) {
	c, peer := pair(t)
	c.SetWriteBuffer(4096)
	peer.SetReadBuffer(4096)
	chunk := make([]byte, 64<<10)
	total := 0
	for range 1000 {
		n, err := c.TryWrite(chunk)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < len(chunk) {
			break // full, and TryWrite said so instead of waiting
		}
	}
	if total == 0 || total >= 1000*len(chunk) {
		t.Fatalf("TryWrite wrote %d bytes to a peer that reads nothing", total)
	}
}

func TestErrors(t *testing.T) {
	c, peer := pair(t)
	peer.SetLinger(0)
	peer.Close() // RST
	time.Sleep(20 * time.Millisecond)
	_, err := c.Read(make([]byte, 1))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read from a reset connection = %v, want a read OpError wrapping ECONNRESET", err)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close = %v, want net.ErrClosed", err)
	}
}
