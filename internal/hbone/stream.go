package hbone

import (
	"errors"
	"io"
	"strconv"
	"sync"

	"golang.org/x/net/http2"

	"github.com/rampartsec/rampart/internal/sockio"
)

var (
	errWriteClosed = errors.New("hbone stream: write after CloseWrite")
	errClosed      = errors.New("hbone stream closed")
	errResponded   = errors.New("hbone stream: already answered")
)

// Stream is one tunnel: a CONNECT stream after its 200 answer, read and
// written like a TCP connection with half-close. Read may run concurrently
// with Write and CloseWrite, but Write and CloseWrite must not run
// concurrently with each other, as for one socket's writer.
type Stream struct {
	c         *Conn
	id        uint32
	authority string
	answered  chan struct{} // client: closed at the answer or on failure
	answer    sync.Once

	// Send side, under c.mu.
	sendWin int64
	sentEnd bool  // END_STREAM sent, or the stream can no longer send
	dead    bool  // aborted
	stopped error // the peer ended its side and asked this one to stop sending

	// Receive side, under mu.
	mu          sync.Mutex
	cond        sync.Cond // data queued, the end reached, or aborted
	status      int       // client: the answer's status
	responded   bool      // server: Respond was called
	pending     []byte    // received payload not yet delivered, from off
	off         int
	spare       []byte       // the other buffer, while Splice writes one
	recvEnd     bool         // END_STREAM received
	rerr        error        // why the stream was aborted
	draining    bool         // Splice is writing queued payload outside mu
	sink        *sockio.Conn // Splice's socket: the reader writes into it without waiting
	sinkErr     error
	delivered   int64 // payload written to the sink
	recvAvail   int64 // stream receive window left
	recvUnacked int64 // consumed, not yet returned
}

// Authority is the :authority of the stream's CONNECT request.
func (s *Stream) Authority() string { return s.authority }

// ID is the HTTP/2 stream ID.
func (s *Stream) ID() uint32 { return s.id }

// Respond answers a client's CONNECT: 200 opens the tunnel, any other
// status refuses it and ends the stream. Server only, once.
func (s *Stream) Respond(status int) error {
	if !s.c.server {
		return errors.New("hbone: Respond on a client stream")
	}
	s.mu.Lock()
	done := s.responded
	s.responded = true
	s.mu.Unlock()
	if done {
		return errResponded
	}
	end := status != 200
	c := s.c
	c.mu.Lock()
	dead := s.dead
	if end {
		s.sentEnd = true
	}
	c.mu.Unlock()
	if dead {
		return s.err()
	}
	err := c.writeStatus(s.id, status, end)
	if end {
		// Refused: nothing more is read or written on the stream.
		s.abort(&StatusError{Status: status})
	}
	return err
}

// Read reads the tunnel's bytes from the peer; io.EOF once the peer
// half-closed its direction.
func (s *Stream) Read(b []byte) (int, error) {
	s.mu.Lock()
	for s.pendingLen() == 0 && !s.recvEnd && s.rerr == nil {
		s.cond.Wait()
	}
	if s.rerr != nil {
		err := s.rerr
		s.mu.Unlock()
		return 0, err
	}
	if s.pendingLen() == 0 {
		s.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(b, s.pending[s.off:])
	s.off += n
	if s.off == len(s.pending) {
		s.pending, s.off = reuse(s.pending), 0
	}
	back := s.ackLocked(int64(n))
	s.mu.Unlock()
	s.c.windowUpdate(s.id, back, s.c.consumedConn(int64(n)))
	return n, nil
}

// Write sends b to the peer as DATA frames, waiting for flow-control
// window when the peer is slow.
func (s *Stream) Write(b []byte) (int, error) {
	c := s.c
	written := 0
	for len(b) > 0 {
		c.mu.Lock()
		for !s.dead && !s.sentEnd && c.err == nil && (s.sendWin <= 0 || c.sendWin <= 0) {
			c.sendCond.Wait()
		}
		switch {
		case s.stopped != nil:
			c.mu.Unlock()
			return written, s.stopped
		case s.dead || c.err != nil:
			c.mu.Unlock()
			return written, s.err()
		case s.sentEnd:
			c.mu.Unlock()
			return written, errWriteClosed
		}
		// maxData is below the smallest frame size a peer may set.
		n := int64(min(len(b), maxData))
		n = min(n, s.sendWin, c.sendWin)
		s.sendWin -= n
		c.sendWin -= n
		c.mu.Unlock()
		if err := c.writeData(s.id, false, b[:n]); err != nil {
			return written, err
		}
		written += int(n)
		b = b[n:]
	}
	return written, nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, maxData); return &b }}

// ReadFrom copies r to the stream until r's EOF, in reads of one frame's
// payload, so that each read becomes one DATA frame and one TLS record.
// It does not half-close the stream.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// The wrappers hide s's ReadFrom (which this is) and r's WriteTo, so
	// that the copy goes through buf.
	return io.CopyBuffer(struct{ io.Writer }{s}, struct{ io.Reader }{r}, *bp)
}

// CloseWrite half-closes the stream: END_STREAM to the peer; reading
// goes on.
func (s *Stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	switch {
	case s.dead:
		c.mu.Unlock()
		return s.err()
	case s.sentEnd:
		c.mu.Unlock()
		return nil
	}
	s.sentEnd = true
	c.mu.Unlock()
	err := c.writeData(s.id, true, nil)
	s.forgetIfDone()
	return err
}

// Close ends the stream unless both directions already ended; further
// reads and writes fail. If this side sent all it had (CloseWrite) and
// the peer is still sending, the peer is asked to stop with RST_STREAM
// NO_ERROR, which leaves it what it received: a complete HTTP response
// before the whole request, as RFC 9113 8.1 allows. Otherwise the stream
// is aborted with RST_STREAM CANCEL.
func (s *Stream) Close() error {
	c := s.c
	c.mu.Lock()
	live := c.streams[s.id] == s
	code := http2.ErrCodeCancel
	if s.sentEnd && !s.dead {
		code = http2.ErrCodeNo
	}
	c.mu.Unlock()
	if live {
		c.resetStream(s.id, code)
	}
	s.abort(errClosed)
	return nil
}

// peerReset takes the peer's RST_STREAM. NO_ERROR after the peer's
// END_STREAM only stops this side's sending: what was received stays
// readable.
func (s *Stream) peerReset(code http2.ErrCode) {
	s.mu.Lock()
	ended := s.recvEnd
	s.mu.Unlock()
	if code != http2.ErrCodeNo || !ended {
		s.abort(&ResetError{Code: code})
		return
	}
	c := s.c
	c.mu.Lock()
	s.stopped = &ResetError{Code: code}
	s.sentEnd = true
	c.forgetLocked(s)
	c.sendCond.Broadcast()
	c.mu.Unlock()
	s.answer.Do(func() { close(s.answered) })
}

// err is the error reads and writes of an aborted stream return.
func (s *Stream) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rerr != nil {
		return s.rerr
	}
	return ErrConnClosed
}

// abort ends the stream with err for both directions, drops what was
// queued (giving its window back) and wakes everything waiting on it.
func (s *Stream) abort(err error) {
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = err
	}
	dropped := int64(s.pendingLen())
	s.pending, s.off, s.spare = nil, 0, nil
	s.cond.Broadcast()
	s.mu.Unlock()
	s.answer.Do(func() { close(s.answered) })
	c := s.c
	c.mu.Lock()
	s.dead, s.sentEnd = true, true
	c.forgetLocked(s)
	c.sendCond.Broadcast()
	c.mu.Unlock()
	c.windowUpdate(0, 0, c.consumedConn(dropped))
}

// pendingLen is how many received bytes wait to be delivered; s.mu is
// held.
func (s *Stream) pendingLen() int { return len(s.pending) - s.off }

// maxKeep is the largest receive buffer kept for reuse once emptied: a
// burst of a stream's whole window is not held for the stream's life.
const maxKeep = 64 << 10

// reuse returns an emptied buffer to append to again: b itself, or nil
// if it grew large.
func reuse(b []byte) []byte {
	if cap(b) > maxKeep {
		return nil
	}
	return b[:0]
}

// forgetIfDone removes the stream from its connection once both
// directions ended.
func (s *Stream) forgetIfDone() {
	c := s.c
	c.mu.Lock()
	s.mu.Lock()
	if s.sentEnd && s.recvEnd {
		c.forgetLocked(s)
	}
	s.mu.Unlock()
	c.mu.Unlock()
}

// ackLocked accounts n bytes of the stream's payload as consumed and
// returns the stream window to give back now: once half is used, and
// never after the peer's END_STREAM; s.mu is held.
func (s *Stream) ackLocked(n int64) int64 {
	if n == 0 || s.recvEnd {
		return 0
	}
	s.recvUnacked += n
	if s.recvUnacked < streamWindow/2 {
		return 0
	}
	back := s.recvUnacked
	s.recvUnacked = 0
	s.recvAvail += back
	return back
}

// receive takes a DATA frame's payload (n bytes of window with padding)
// and END_STREAM flag, on the reader goroutine: straight into the
// spliced socket when it has room and nothing is queued before it, else
// into the queue.
func (s *Stream) receive(data []byte, n int64, end bool) error {
	c := s.c
	s.mu.Lock()
	if s.rerr != nil {
		s.mu.Unlock()
		c.windowUpdate(0, 0, c.consumedConn(n))
		return nil
	}
	if s.recvEnd {
		s.mu.Unlock()
		c.windowUpdate(0, 0, c.consumedConn(n))
		c.streamError(s.id, http2.ErrCodeStreamClosed)
		return nil
	}
	s.recvAvail -= n
	if s.recvAvail < 0 {
		s.mu.Unlock()
		c.windowUpdate(0, 0, c.consumedConn(n))
		c.streamError(s.id, http2.ErrCodeFlowControl)
		return nil
	}
	consumed := n - int64(len(data)) // padding
	if len(data) > 0 && s.sink != nil && s.pendingLen() == 0 && !s.draining {
		w, err := s.sink.TryWrite(data)
		s.delivered += int64(w)
		consumed += int64(w)
		data = data[w:]
		if err != nil {
			s.sinkErr = err
			s.mu.Unlock()
			c.windowUpdate(0, 0, c.consumedConn(n))
			s.Close()
			return nil
		}
	}
	if len(data) > 0 {
		s.pending = append(s.pending, data...)
	}
	if len(data) > 0 || end {
		s.cond.Broadcast()
	}
	back := s.ackLocked(consumed)
	if end {
		s.recvEnd = true
	}
	s.mu.Unlock()
	c.windowUpdate(s.id, back, c.consumedConn(consumed))
	if end {
		s.forgetIfDone()
	}
	return nil
}

// onResponse takes the server's answer to the CONNECT (or trailers).
func (s *Stream) onResponse(f *http2.MetaHeadersFrame) error {
	s.mu.Lock()
	answered := s.status != 0
	s.mu.Unlock()
	if answered {
		if !f.StreamEnded() {
			s.c.streamError(s.id, http2.ErrCodeProtocol)
			return nil
		}
		return s.receive(nil, 0, true)
	}
	status, err := strconv.Atoi(f.PseudoValue("status"))
	switch {
	case err != nil || status < 100 || status > 999:
		s.c.streamError(s.id, http2.ErrCodeProtocol)
		return nil
	case status < 200:
		return nil // informational; the final answer follows
	}
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
	s.answer.Do(func() { close(s.answered) })
	if f.StreamEnded() {
		return s.receive(nil, 0, true)
	}
	return nil
}
