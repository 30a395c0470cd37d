package hbone_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rampartsec/rampart/internal/hbone"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.AcceptTCP()
		ch <- res{c, err}
	}()
	client, err = net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// echoServer accepts TCP connections and echoes them, half-close
// included; readDelay slows each read to fill the sender's socket.
func echoServer(t *testing.T, readDelay time.Duration) *net.TCPAddr {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					if readDelay > 0 {
						time.Sleep(readDelay)
					}
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						c.CloseWrite()
						return
					}
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr)
}

// spliceHandler answers 200 and splices every stream to a new connection
// to upstream. A small send buffer to a slow upstream makes the reader's
// direct writes fall short, so that the queue is used too.
func spliceHandler(t *testing.T, upstream *net.TCPAddr) func(*hbone.Stream) {
	return func(s *hbone.Stream) {
		up, err := net.DialTCP("tcp", nil, upstream)
		if err != nil {
			s.Respond(http.StatusServiceUnavailable)
			return
		}
		defer up.Close()
		up.SetWriteBuffer(8 << 10)
		if err := s.Respond(http.StatusOK); err != nil {
			return
		}
		s.Splice(up)
	}
}

// serve runs hbone.Serve on one end of a TCP pair and returns a client on
// the other.
func serve(t *testing.T, cfg hbone.Config) *hbone.Conn {
	t.Helper()
	cc, sc := tcpPair(t)
	done := make(chan error, 1)
	go func() { done <- hbone.Serve(sc, cfg) }()
	c, err := hbone.NewClient(cc, hbone.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after the client closed")
		}
	})
	return c
}

// roundTrip writes payload on s, half-closes, and reads until EOF.
func roundTrip(s io.ReadWriter, payload []byte) ([]byte, error) {
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(payload)
		if err == nil {
			err = s.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		return got, werr
	}
	return got, rerr
}

func TestEcho(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		streams   int
		readDelay time.Duration
	}{
		{name: "one byte", size: 1, streams: 1},
		{name: "one frame", size: 16375, streams: 1},
		{name: "beyond windows", size: 9 << 20, streams: 1},
		{name: "many streams", size: 200 << 10, streams: 40},
		{name: "slow application", size: 2 << 20, streams: 2, readDelay: 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, hbone.Config{Handler: spliceHandler(t, echoServer(t, tc.readDelay))})
			var wg sync.WaitGroup
			for i := range tc.streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					payload := make([]byte, tc.size)
					rand.Read(payload)
					s, err := c.Open(context.Background(), "10.0.0.1:80")
					if err != nil {
						t.Errorf("stream %d: Open: %v", i, err)
						return
					}
					defer s.Close()
					got, err := roundTrip(s, payload)
					if err != nil {
						t.Errorf("stream %d: %v", i, err)
					}
					if !bytes.Equal(got, payload) {
						t.Errorf("stream %d: echoed %d bytes, differing from the %d sent", i, len(got), len(payload))
					}
				}()
			}
			wg.Wait()
		})
	}
}

func TestRefused(t *testing.T) {
	var got string
	c := serve(t, hbone.Config{Handler: func(s *hbone.Stream) {
		got = s.Authority()
		s.Respond(http.StatusForbidden)
	}})
	_, err := c.Open(context.Background(), "[fd00::1]:8080")
	se, ok := errors.AsType[*hbone.StatusError](err)
	if !ok || se.Status != http.StatusForbidden {
		t.Fatalf("Open = %v, want StatusError 403", err)
	}
	if got != "[fd00::1]:8080" {
		t.Errorf("handler saw authority %q", got)
	}
	// The connection still serves streams after a refusal.
	_, err = c.Open(context.Background(), "10.0.0.1:80")
	if se, ok := errors.AsType[*hbone.StatusError](err); !ok || se.Status != http.StatusForbidden {
		t.Fatalf("second Open = %v, want StatusError 403", err)
	}
}

func TestResetReachesPeer(t *testing.T) {
	readErr := make(chan error, 1)
	c := serve(t, hbone.Config{Handler: func(s *hbone.Stream) {
		s.Respond(http.StatusOK)
		_, err := io.Copy(io.Discard, s)
		readErr <- err
	}})
	s, err := c.Open(context.Background(), "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("partial"))
	s.Close()
	select {
	case err := <-readErr:
		if re, ok := errors.AsType[*hbone.ResetError](err); !ok || re.Code != http2.ErrCodeCancel {
			t.Fatalf("server read ended with %v, want a CANCEL reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the reset")
	}
	if _, err := s.Write([]byte("more")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	c := serve(t, hbone.Config{MaxConcurrentStreams: 2, Handler: func(s *hbone.Stream) {
		s.Respond(http.StatusOK)
		<-release
	}})
	defer close(release)
	for i := range 2 {
		if _, err := c.Open(context.Background(), "10.0.0.1:80"); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if c.Available() {
		t.Error("Available with the peer's limit reached")
	}
	if _, err := c.Open(context.Background(), "10.0.0.1:80"); !errors.Is(err, hbone.ErrConnFull) {
		t.Fatalf("third Open = %v, want ErrConnFull", err)
	}
}

// TestHandlerOutlivingItsStreamHoldsItsSlot: a stream the client reset
// leaves MaxConcurrentStreams taken until its handler returns, so that the
// client's next stream is refused, and Open reports that as ErrConnFull:
// another connection may take it.
func TestHandlerOutlivingItsStreamHoldsItsSlot(t *testing.T) {
	release := make(chan struct{})
	c := serve(t, hbone.Config{MaxConcurrentStreams: 1, Handler: func(s *hbone.Stream) {
		s.Respond(http.StatusOK)
		io.Copy(io.Discard, s) // until the reset
		<-release
	}})
	defer close(release)
	s, err := c.Open(context.Background(), "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = c.Open(context.Background(), "10.0.0.1:80")
	if re, ok := errors.AsType[*hbone.ResetError](err); !errors.Is(err, hbone.ErrConnFull) || !ok || re.Code != http2.ErrCodeRefusedStream {
		t.Fatalf("Open while the reset stream's handler runs = %v, want ErrConnFull from REFUSED_STREAM", err)
	}
}

func TestServerGoneFailsStreams(t *testing.T) {
	cc, sc := tcpPair(t)
	go hbone.Serve(sc, hbone.Config{Handler: func(s *hbone.Stream) {
		s.Respond(http.StatusOK)
		sc.Close()
	}})
	c, err := hbone.NewClient(cc, hbone.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Open(context.Background(), "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(s); !errors.Is(err, hbone.ErrConnClosed) {
		t.Fatalf("read on a dead connection = %v, want ErrConnClosed", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client connection not done after the server closed")
	}
	if _, err := c.Open(context.Background(), "10.0.0.1:80"); !errors.Is(err, hbone.ErrConnClosed) {
		t.Fatalf("Open on a dead connection = %v, want ErrConnClosed", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	cc, sc := tcpPair(t)
	go hbone.Serve(sc, hbone.Config{Handler: spliceHandler(t, echoServer(t, 0))})
	c, err := hbone.NewClient(cc, hbone.Config{IdleTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Open(context.Background(), "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if c.Closed() {
		t.Fatal("connection closed while a stream was open")
	}
	if got, err := roundTrip(s, []byte("x")); err != nil || string(got) != "x" {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection not closed")
	}
}

func TestOpenHonoursContext(t *testing.T) {
	c := serve(t, hbone.Config{Handler: func(s *hbone.Stream) {
		time.Sleep(time.Second) // answers too late
		s.Respond(http.StatusOK)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Open(ctx, "10.0.0.1:80"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open = %v, want the context's deadline", err)
	}
}

// TestCompleteAnswerBeforeRequestEnds: a server that sent everything and
// ends the stream while the client is still sending (an HTTP response
// before the whole request) resets with NO_ERROR; the client still reads
// the whole answer, and only its writes stop.
func TestCompleteAnswerBeforeRequestEnds(t *testing.T) {
	c := serve(t, hbone.Config{Handler: func(s *hbone.Stream) {
		s.Respond(http.StatusOK)
		s.Write([]byte("the whole answer"))
		s.CloseWrite()
	}})
	s, err := c.Open(context.Background(), "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "the whole answer" {
		t.Fatalf("read %q, %v", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Write([]byte("more request"))
		if re, ok := errors.AsType[*hbone.ResetError](err); ok && re.Code == http2.ErrCodeNo {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write after the server finished: %v, want a NO_ERROR reset", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeadPeerFound: a peer that stops answering (here: it read the
// preface and went silent, as a host that vanished would) is found by
// PING, and the connection and its streams fail.
func TestDeadPeerFound(t *testing.T) {
	cc, sc := tcpPair(t)
	go io.Copy(io.Discard, sc) // reads everything, answers nothing
	c, err := hbone.NewClient(cc, hbone.Config{ReadIdleTimeout: 100 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection to a silent peer still open after 5 s")
	}
	// A live peer answers the pings and keeps the connection.
	cc2, sc2 := tcpPair(t)
	go hbone.Serve(sc2, hbone.Config{Handler: spliceHandler(t, echoServer(t, 0))})
	c2, err := hbone.NewClient(cc2, hbone.Config{ReadIdleTimeout: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	time.Sleep(500 * time.Millisecond)
	if c2.Closed() {
		t.Fatal("connection to a live peer closed by the health check")
	}
}
