package hbone

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The tests here play a hostile client with a raw Framer against Serve,
// and look at the server's internals.

// tcpPair returns both ends of a loopback TCP connection; with small,
// the buffers on the server's way out are small, so that a client that
// does not read fills them with a few frames.
func tcpPair(t *testing.T, small bool) (client, server *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := l.AcceptTCP()
		ch <- c
	}()
	var d net.Dialer
	if small {
		// The receive buffer is set before the connection is made, so
		// that the window the client advertises is small from the
		// start: set later, it cannot shrink what was advertised, and
		// the sockets absorb hundreds of KB before the server's writes
		// block.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client = nc.(*net.TCPConn)
	server = <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	if small {
		server.SetWriteBuffer(4 << 10)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// serveAsync runs Serve on nc and returns its result.
func serveAsync(nc net.Conn, cfg Config) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Serve(nc, cfg) }()
	return done
}

// rawClient builds a client's frames into a buffer, to be written at once.
type rawClient struct {
	buf  bytes.Buffer
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
}

// newRawClient starts with the preface and settings of a client that
// lets the server send as much as it likes.
func newRawClient() *rawClient {
	r := &rawClient{}
	r.buf.WriteString(http2.ClientPreface)
	r.fr = http2.NewFramer(&r.buf, nil)
	r.enc = hpack.NewEncoder(&r.hbuf)
	r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	r.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	return r
}

// open starts stream id with method.
func (r *rawClient) open(id uint32, method string) {
	r.hbuf.Reset()
	r.enc.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	r.enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "10.0.0.1:80"})
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndHeaders: true})
}

// send writes what was built to nc in the background, giving up after a
// while (the server may stop reading, or close).
func (r *rawClient) send(nc net.Conn) {
	b := bytes.Clone(r.buf.Bytes())
	r.buf.Reset()
	go func() {
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		nc.Write(b)
	}()
}

// waitServe returns Serve's result, failing the test if it takes longer
// than d.
func waitServe(t *testing.T, done <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("Serve still running after %v", d)
		return nil
	}
}

// TestControlFrameFlood: a client that causes control frames and never
// reads must not grow the server's queue without bound; the connection
// fails once maxQueuedControlFrames are queued.
func TestControlFrameFlood(t *testing.T) {
	// Enough frames that the queue fills whatever the loopback sockets
	// absorb first (a few hundred KB, however small their buffers are
	// set after the connection is made): 10 times the limit is at least
	// 900 KB of acknowledgements.
	const n = 10 * maxQueuedControlFrames
	// drain is a handler that reads until its stream ends.
	drain := func(s *Stream) { io.Copy(io.Discard, s) }
	for _, tc := range []struct {
		name    string
		cfg     Config
		prepare func(r *rawClient)
		flood   func(r *rawClient, i int)
	}{{
		name:  "ping acks",
		cfg:   Config{Handler: drain},
		flood: func(r *rawClient, i int) { r.fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)}) },
	}, {
		name: "ping acks behind a blocked stream writer",
		cfg: Config{Handler: func(s *Stream) {
			s.Respond(200)
			buf := make([]byte, 64<<10)
			for {
				if _, err := s.Write(buf); err != nil {
					return
				}
			}
		}},
		prepare: func(r *rawClient) { r.open(1, "CONNECT") },
		flood:   func(r *rawClient, i int) { r.fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)}) },
	}, {
		name:  "settings acks",
		cfg:   Config{Handler: drain},
		flood: func(r *rawClient, _ int) { r.fr.WriteSettings() },
	}, {
		name:    "resets of data on a closed stream",
		cfg:     Config{Handler: drain},
		prepare: func(r *rawClient) { r.open(1, "GET") }, // answered 405 and closed at once
		flood:   func(r *rawClient, _ int) { r.fr.WriteData(1, false, nil) },
	}, {
		name:    "refused streams",
		cfg:     Config{Handler: drain, MaxConcurrentStreams: 1},
		prepare: func(r *rawClient) { r.open(1, "CONNECT") },
		flood:   func(r *rawClient, i int) { r.open(uint32(3+2*i), "CONNECT") },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := tcpPair(t, true)
			done := serveAsync(sc, tc.cfg)
			r := newRawClient()
			if tc.prepare != nil {
				tc.prepare(r)
			}
			for i := range n {
				tc.flood(r, i)
			}
			r.send(cc)
			if err := waitServe(t, done, 10*time.Second); !errors.Is(err, errControlFlood) {
				t.Fatalf("Serve = %v, want %v", err, errControlFlood)
			}
		})
	}
}

// TestReaderKeepsReadingWhenSocketFull: frames the reader answers while
// the socket is full (here PING acks to a client that does not read) are
// queued, not written by the reader, which would block in the write and
// stop reading: a stream opened after them still starts. Two peers doing
// that to each other would deadlock.
func TestReaderKeepsReadingWhenSocketFull(t *testing.T) {
	cc, sc := tcpPair(t, true)
	started := make(chan struct{})
	done := serveAsync(sc, Config{Handler: func(s *Stream) {
		close(started)
		io.Copy(io.Discard, s)
	}})
	r := newRawClient()
	for i := range maxQueuedControlFrames / 2 {
		r.fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)})
	}
	r.open(1, "CONNECT")
	r.send(cc)
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Serve returned %v before the stream started", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the stream opened after the pings did not start: the reader stopped reading")
	}
	cc.Close()
	waitServe(t, done, 5*time.Second)
}

// TestRapidReset: a client that opens streams and resets them at once
// (CVE-2023-44487) gets no more handlers running than
// MaxConcurrentStreams, even when they outlive their streams; if
// handlers end quickly enough for it to go on, it is sent GOAWAY
// ENHANCE_YOUR_CALM and disconnected.
func TestRapidReset(t *testing.T) {
	const (
		limit   = 10
		batches = 20
		batch   = 1000
	)
	for _, tc := range []struct {
		name string
		// hold keeps handlers running after their stream's reset.
		hold       bool
		wantGoAway bool
	}{
		{name: "handlers outlive the reset", hold: true},
		{name: "handlers end at the reset", wantGoAway: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := tcpPair(t, false)
			release := make(chan struct{})
			var running, peak atomic.Int64
			done := serveAsync(sc, Config{MaxConcurrentStreams: limit, Handler: func(s *Stream) {
				n := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				io.Copy(io.Discard, s) // until the reset
				if tc.hold {
					<-release // authorizing, dialing the application...
				}
			}})
			defer close(release)

			// Batches of HEADERS and RST_STREAM pairs, each followed by
			// a PING whose ack tells that the server read the batch.
			r := newRawClient()
			id := uint32(1)
			for b := range batches {
				for range batch {
					r.open(id, "CONNECT")
					r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
					id += 2
				}
				r.fr.WritePing(false, [8]byte{byte(b)})
			}
			r.send(cc)

			cc.SetReadDeadline(time.Now().Add(10 * time.Second))
			fr := http2.NewFramer(nil, bufio.NewReader(cc))
			var refused int
			var goAway *http2.GoAwayFrame
			var readErr error
		read:
			for {
				f, err := fr.ReadFrame()
				if err != nil {
					readErr = err
					break
				}
				switch f := f.(type) {
				case *http2.RSTStreamFrame:
					if f.ErrCode == http2.ErrCodeRefusedStream {
						refused++
					}
				case *http2.PingFrame:
					if f.IsAck() && f.Data[0] == batches-1 {
						break read
					}
				case *http2.GoAwayFrame:
					goAway = f
					break read
				}
			}
			if p := peak.Load(); p > limit {
				t.Errorf("%d handlers ran at once, with MaxConcurrentStreams %d", p, limit)
			}
			if !tc.wantGoAway {
				if goAway != nil {
					t.Fatalf("GOAWAY %v", goAway.ErrCode)
				}
				if want := batches*batch - limit; refused != want {
					t.Errorf("%d streams refused, want %d", refused, want)
				}
				return
			}
			// The server closes right after its GOAWAY, with the rest of
			// the client's frames unread, so the kernel may answer with
			// a reset that overtakes the GOAWAY before the client reads it.
			switch {
			case goAway != nil:
				if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
					t.Fatalf("GOAWAY %v after %d refusals, want ENHANCE_YOUR_CALM", goAway.ErrCode, refused)
				}
			case errors.Is(readErr, syscall.ECONNRESET):
			default:
				t.Fatalf("no GOAWAY and no reset after %d refusals (read: %v)", refused, readErr)
			}
			if err := waitServe(t, done, 5*time.Second); !errors.Is(err, errRapidReset) {
				t.Errorf("Serve = %v, want %v", err, errRapidReset)
			}
		})
	}
}
