package hbone

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Flow-control windows this side advertises, and the largest DATA payload
// it sends: a frame header and a payload of maxData bytes fill exactly one
// TLS record (16 KiB of plaintext), so every frame is one record.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
	maxData      = 16384 - 9

	// initialPeerMaxStreams is assumed until the peer's SETTINGS say
	// otherwise (RFC 9113 recommends at least 100).
	initialPeerMaxStreams = 100
	defaultMaxStreams     = 1000
	maxHeaderListSize     = 16 << 10
	prefaceTimeout        = 10 * time.Second
)

// Errors of a connection, for errors.Is.
var (
	// ErrConnClosed is returned for streams of a connection that closed or
	// that the peer is shutting down (GOAWAY): a caller may retry on a new
	// connection.
	ErrConnClosed = errors.New("hbone connection closed")
	// ErrConnFull is returned by Open when the connection carries as many
	// streams as the peer allows, or the peer refused the stream
	// (REFUSED_STREAM: it allows as many streams as handlers it runs, and
	// a handler may outlive its stream).
	ErrConnFull = errors.New("hbone connection has no free stream")
)

// StatusError is a CONNECT the server refused with a status other than 200.
type StatusError struct{ Status int }

func (e *StatusError) Error() string { return "hbone connect refused: " + strconv.Itoa(e.Status) }

// ResetError is a stream the peer aborted with RST_STREAM.
type ResetError struct{ Code http2.ErrCode }

func (e *ResetError) Error() string { return "hbone stream reset by peer: " + e.Code.String() }

// Config tunes a connection. The zero value is a client with no idle
// timeout.
type Config struct {
	// Handler serves each CONNECT stream a client opens, on a goroutine
	// of its own; it must answer with Stream.Respond. Server only. The
	// stream is closed (reset, unless both directions ended) when the
	// handler returns.
	Handler func(*Stream)
	// IdleTimeout closes the connection once it has carried no stream
	// for this long; 0 never does.
	IdleTimeout time.Duration
	// MaxConcurrentStreams is the server's limit on streams the client
	// may open at once, 1000 by default, and on handlers running at
	// once: a handler counts until it returns, even after the client
	// reset its stream, and streams past the limit are refused
	// (REFUSED_STREAM). A client that resets more than this many (at
	// least 100) streams before their answer within a second is sent
	// GOAWAY ENHANCE_YOUR_CALM and disconnected (rapid reset).
	MaxConcurrentStreams uint32
	// ReadIdleTimeout sends a PING when no frame came from the peer for
	// this long, and PingTimeout (15 s by default) closes the connection
	// if nothing answers it: a dead peer is found even when the socket
	// would not say so for minutes. 0 disables pings.
	ReadIdleTimeout time.Duration
	PingTimeout     time.Duration
}

// Conn is one HTTP/2 connection carrying CONNECT streams. Its methods are
// safe for concurrent use.
type Conn struct {
	nc     net.Conn
	server bool
	cfg    Config
	br     *bufio.Reader // what fr reads from
	fr     *http2.Framer // reading; the reader goroutine only

	wmu  sync.Mutex    // serialises frame writes
	wfr  *http2.Framer // writing, under wmu
	cfr  *http2.Framer // writing control frames into cbuf, under wmu
	cbuf bytes.Buffer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	// Control frames (window updates, acks, resets) that could not be
	// written at once, written by the next writer or by the control
	// goroutine: the queue from ctlHead, with the connection window to
	// return merged into ctlConnWin (write.go).
	ctlMu      sync.Mutex
	ctl        []ctlFrame
	ctlHead    int
	ctlConnWin int64
	ctlPending atomic.Bool
	ctlKick    chan struct{}

	// Receive windows of the connection: what the peer may still send,
	// and what was consumed but not yet returned with WINDOW_UPDATE.
	recvAvail   atomic.Int64
	recvUnacked atomic.Int64

	mu             sync.Mutex
	sendCond       sync.Cond // a send window grew or the connection failed
	streams        map[uint32]*Stream
	nextID         uint32 // client: next stream ID
	lastPeerID     uint32 // server: highest stream ID the client opened
	sendWin        int64  // connection send window
	peerInitWin    int64
	peerMaxStreams uint32
	goAway         bool  // no new streams
	err            error // why the connection ended; nil while live
	idle           *time.Timer

	// Liveness: when a frame was last read, and when the outstanding
	// PING was sent (0: none), in Unix nanoseconds.
	lastRead atomic.Int64
	pingSent atomic.Int64
	health   *time.Timer

	// Server: handlers running, which count against
	// MaxConcurrentStreams until they return; and the client's resets of
	// unanswered streams in the second since earlyResetsSince (reader
	// only).
	running          atomic.Int64
	earlyResets      uint32
	earlyResetsSince time.Time

	closing  chan struct{} // closed by fail
	done     chan struct{} // closed when the reader returned
	handlers sync.WaitGroup
	failOnce sync.Once
}

func newConn(nc net.Conn, server bool, cfg Config) *Conn {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = defaultMaxStreams
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 15 * time.Second
	}
	c := &Conn{
		nc:             nc,
		server:         server,
		cfg:            cfg,
		streams:        map[uint32]*Stream{},
		nextID:         1,
		sendWin:        65535,
		peerInitWin:    65535,
		peerMaxStreams: initialPeerMaxStreams,
		ctlKick:        make(chan struct{}, 1),
		closing:        make(chan struct{}),
		done:           make(chan struct{}),
	}
	c.sendCond.L = &c.mu
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.SetReuseFrames()
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderListSize
	c.wfr = http2.NewFramer(nc, nil)
	c.cfr = http2.NewFramer(&c.cbuf, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.recvAvail.Store(connWindow)
	return c
}

// startTimers arms the idle and health timers once the connection is set
// up and before its reader starts: a connection that fails before that has
// no timer to stop (and none whose Close would wait for a reader that
// never ran). The timers are made unarmed and armed once stored, because
// their functions use them and may run as soon as they are armed.
func (c *Conn) startTimers() {
	if c.cfg.IdleTimeout > 0 {
		c.idle = time.AfterFunc(time.Hour, c.closeIfIdle)
		c.idle.Stop()
		c.idle.Reset(c.cfg.IdleTimeout)
	}
	c.lastRead.Store(time.Now().UnixNano())
	if c.cfg.ReadIdleTimeout > 0 {
		c.health = time.AfterFunc(time.Hour, c.checkHealth)
		c.health.Stop()
		c.health.Reset(c.cfg.ReadIdleTimeout)
	}
}

// NewClient starts the client side of an HTTP/2 connection on nc (usually
// a *tls.Conn that negotiated ALPN "h2"): it sends the preface and this
// side's settings and starts the connection's reader. Close it when done.
func NewClient(nc net.Conn, cfg Config) (*Conn, error) {
	c := newConn(nc, false, cfg)
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	f := http2.NewFramer(&b, nil)
	f.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	)
	f.WriteWindowUpdate(0, connWindow-65535)
	if _, err := nc.Write(b.Bytes()); err != nil {
		nc.Close()
		return nil, fmt.Errorf("hbone client preface: %w", err)
	}
	c.startTimers()
	go c.run()
	return c, nil
}

// Serve runs the server side of an HTTP/2 connection on nc until it ends,
// calling cfg.Handler for every stream. It returns after every handler
// has returned, with the error that ended the connection (nil for a clean
// close by either side).
func Serve(nc net.Conn, cfg Config) error {
	if cfg.Handler == nil {
		return errors.New("hbone serve: no handler")
	}
	c := newConn(nc, true, cfg)
	nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		nc.Close()
		if err == nil {
			err = errors.New("not an HTTP/2 client preface")
		}
		return fmt.Errorf("hbone preface: %w", err)
	}
	nc.SetReadDeadline(time.Time{})
	var b bytes.Buffer
	f := http2.NewFramer(&b, nil)
	f.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
	)
	f.WriteWindowUpdate(0, connWindow-65535)
	if _, err := nc.Write(b.Bytes()); err != nil {
		nc.Close()
		return fmt.Errorf("hbone server settings: %w", err)
	}
	c.startTimers()
	c.run()
	c.handlers.Wait()
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if errors.Is(err, ErrConnClosed) || errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// Open starts a CONNECT stream to authority and waits for the server's
// answer: the stream when it is 200, a *StatusError otherwise. It fails
// with ErrConnFull when the peer allows no more streams on this
// connection and ErrConnClosed when the connection is gone or going
// away; the caller may try another connection for both.
func (c *Conn) Open(ctx context.Context, authority string) (*Stream, error) {
	if c.server {
		return nil, errors.New("hbone: Open on a server connection")
	}
	c.wmu.Lock()
	c.mu.Lock()
	switch {
	case c.err != nil || c.goAway || c.nextID >= 1<<31:
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, ErrConnClosed
	case uint32(len(c.streams)) >= c.peerMaxStreams:
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, ErrConnFull
	}
	s := c.newStreamLocked(c.nextID, authority)
	c.nextID += 2
	c.mu.Unlock()
	// The stream ID is allocated and its HEADERS written under the write
	// lock, so IDs go out in increasing order as RFC 9113 requires.
	err := c.flushCtlLocked()
	if err == nil {
		c.hbuf.Reset()
		c.henc.WriteField(hpack.HeaderField{Name: ":method", Value: "CONNECT"})
		c.henc.WriteField(hpack.HeaderField{Name: ":authority", Value: authority})
		err = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true})
	}
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return nil, ErrConnClosed
	}
	select {
	case <-s.answered:
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	s.mu.Lock()
	status, rerr := s.status, s.rerr
	s.mu.Unlock()
	switch {
	case status == 200:
		return s, nil
	case status != 0:
		s.Close()
		return nil, &StatusError{Status: status}
	default:
		if re, ok := errors.AsType[*ResetError](rerr); ok && re.Code == http2.ErrCodeRefusedStream {
			// The server did not process the stream (RFC 9113 8.7), and
			// another connection may take it.
			return nil, fmt.Errorf("%w: %w", ErrConnFull, rerr)
		}
		return nil, rerr
	}
}

// Available reports whether Open could start a stream now, a hint for
// picking a pooled connection: Open may still fail if another caller
// takes the last stream first.
func (c *Conn) Available() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && !c.goAway && c.nextID < 1<<31 && uint32(len(c.streams)) < c.peerMaxStreams
}

// Closed reports whether the connection ended or is going away.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil || c.goAway
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close tells the peer with GOAWAY, then closes the connection and every
// stream on it, and waits for the reader to stop.
func (c *Conn) Close() error {
	c.mu.Lock()
	last := c.lastPeerID
	c.mu.Unlock()
	if c.wmu.TryLock() {
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.wfr.WriteGoAway(last, http2.ErrCodeNo, nil)
		c.wmu.Unlock()
	}
	c.fail(ErrConnClosed)
	<-c.done
	return nil
}

// closeIfIdle closes the connection when its idle timer fires and it
// still carries no stream.
func (c *Conn) closeIfIdle() {
	c.mu.Lock()
	idle := len(c.streams) == 0 && c.err == nil
	c.mu.Unlock()
	if idle {
		c.Close()
	}
}

func (c *Conn) stopIdle() {
	if c.idle != nil {
		c.idle.Stop()
	}
}

// errPingTimeout ends a connection whose peer did not answer a PING.
var errPingTimeout = errors.New("hbone: peer did not answer a ping")

// checkHealth runs on the health timer: it sends a PING when the peer has
// been silent for ReadIdleTimeout, and fails the connection when a PING
// went unanswered (no frame at all) for PingTimeout.
func (c *Conn) checkHealth() {
	select {
	case <-c.closing:
		return
	default:
	}
	now := time.Now().UnixNano()
	last, sent := c.lastRead.Load(), c.pingSent.Load()
	if sent != 0 && last > sent {
		c.pingSent.Store(0) // the peer spoke since the PING
		sent = 0
	}
	switch {
	case sent != 0 && now-sent >= int64(c.cfg.PingTimeout):
		c.fail(errPingTimeout)
		return
	case sent != 0:
		c.health.Reset(time.Duration(sent + int64(c.cfg.PingTimeout) - now))
	case now-last >= int64(c.cfg.ReadIdleTimeout):
		c.pingSent.Store(now)
		c.queueCtl(ctlFrame{kind: ctlPing, data: [8]byte{'h', 'b', 'o', 'n', 'e'}})
		c.health.Reset(c.cfg.PingTimeout)
	default:
		c.health.Reset(time.Duration(last + int64(c.cfg.ReadIdleTimeout) - now))
	}
}

// fail ends the connection with err: it closes the socket, which stops the
// reader, and fails every stream.
func (c *Conn) fail(err error) { c.end(err, 0, false) }

// goAwayTimeout bounds the wait for the socket to take a GOAWAY before a
// failing connection closes.
const goAwayTimeout = 100 * time.Millisecond

// goAwayAndFail ends the connection with err like fail, telling the peer
// first with GOAWAY code if the socket takes it within goAwayTimeout: a
// peer that made this side give up has often stopped reading, and
// nothing waits for it longer.
func (c *Conn) goAwayAndFail(code http2.ErrCode, err error) { c.end(err, code, true) }

// end is fail, and goAwayAndFail with goAway.
func (c *Conn) end(err error, code http2.ErrCode, goAway bool) {
	c.failOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		last := c.lastPeerID
		streams := c.streams
		c.streams = map[uint32]*Stream{}
		c.sendCond.Broadcast()
		c.mu.Unlock()
		c.stopIdle()
		if c.health != nil {
			c.health.Stop()
		}
		close(c.closing)
		if goAway {
			// Writers see c.err and stop (but for a last HEADERS or
			// END_STREAM), and the deadline ends any write stuck on a
			// full socket, so the lock comes free by then; nothing
			// calls fail while holding it.
			c.nc.SetWriteDeadline(time.Now().Add(goAwayTimeout))
			c.wmu.Lock()
			c.wfr.WriteGoAway(last, code, nil)
			c.wmu.Unlock()
		}
		c.nc.Close()
		for _, s := range streams {
			s.abort(ErrConnClosed)
		}
	})
}

// newStreamLocked registers a new stream; c.mu is held.
func (c *Conn) newStreamLocked(id uint32, authority string) *Stream {
	s := &Stream{
		c:         c,
		id:        id,
		authority: authority,
		sendWin:   c.peerInitWin,
		recvAvail: streamWindow,
		answered:  make(chan struct{}),
	}
	s.cond.L = &s.mu
	c.streams[id] = s
	if len(c.streams) == 1 {
		c.stopIdle()
	}
	return s
}

// forgetLocked removes a stream that has ended; c.mu is held.
func (c *Conn) forgetLocked(s *Stream) {
	if c.streams[s.id] != s {
		return
	}
	delete(c.streams, s.id)
	if len(c.streams) == 0 && c.idle != nil && c.err == nil {
		c.idle.Reset(c.cfg.IdleTimeout)
	}
	if c.goAway && len(c.streams) == 0 && !c.server && c.err == nil {
		go c.Close()
	}
}
