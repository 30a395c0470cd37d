package hbone

import (
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/rampartsec/rampart/internal/sockio"
)

// Socket is what a stream can be spliced to: a TCP connection, as a
// *net.TCPConn or a *sockio.Conn.
type Socket interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// Splice joins the stream to tc until both directions ended, passing each
// half-close on, and returns the bytes that went to tc (in) and came from
// it (out). The peer's payload is written to tc by the connection's reader
// itself while tc's send buffer has room, without waking this goroutine;
// only what does not fit is queued and written from here. An error in
// either direction (a reset stream, a reset socket) aborts both, and is
// returned. The caller closes tc afterwards.
func (s *Stream) Splice(tc Socket) (in, out int64, err error) {
	// The reader's writes must not wait for room (sockio.Conn.TryWrite).
	sink, ok := tc.(*sockio.Conn)
	if !ok {
		t, isTCP := tc.(*net.TCPConn)
		if !isTCP {
			s.Close()
			return 0, 0, fmt.Errorf("hbone splice: %T is not a TCP connection", tc)
		}
		if sink, err = sockio.New(t); err != nil {
			s.Close()
			return 0, 0, err
		}
		tc = sink
	}
	s.mu.Lock()
	s.sink = sink
	s.mu.Unlock()

	var (
		wg     sync.WaitGroup
		outErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, outErr = s.ReadFrom(tc)
		if outErr == nil {
			outErr = s.CloseWrite()
		}
		if outErr != nil {
			s.Close()
		}
	}()
	inErr := s.drain(tc)
	if inErr != nil {
		tc.Close() // stops the other direction's read
	}
	wg.Wait()
	s.mu.Lock()
	in = s.delivered
	if s.sinkErr != nil {
		inErr = s.sinkErr
	}
	s.mu.Unlock()
	if inErr != nil {
		return in, out, inErr
	}
	return in, out, outErr
}

// drain writes what the reader queued for the sink, in order, until the
// peer's END_STREAM (then half-closes tc) or an abort. The reader appends
// to one buffer while this writes the other.
func (s *Stream) drain(tc Socket) error {
	c := s.c
	for {
		s.mu.Lock()
		for s.pendingLen() == 0 && !s.recvEnd && s.rerr == nil {
			s.cond.Wait()
		}
		if s.rerr != nil {
			err := s.rerr
			s.sink = nil
			s.mu.Unlock()
			return err
		}
		if s.pendingLen() == 0 {
			s.sink = nil
			s.mu.Unlock()
			tc.CloseWrite()
			return nil
		}
		buf := s.pending
		q := buf[s.off:]
		s.pending, s.off, s.spare = s.spare, 0, nil
		s.draining = true
		s.mu.Unlock()

		n, err := tc.Write(q)
		s.mu.Lock()
		s.delivered += int64(n)
		back := s.ackLocked(int64(n))
		s.draining = false
		if s.rerr == nil {
			s.spare = reuse(buf)
		}
		if err != nil {
			s.sinkErr = err
			s.mu.Unlock()
			// What was taken for this write and not written goes back to
			// the connection's window with it; the rest goes with the abort.
			c.windowUpdate(s.id, back, c.consumedConn(int64(len(q))))
			s.Close()
			return err
		}
		s.mu.Unlock()
		c.windowUpdate(s.id, back, c.consumedConn(int64(n)))
	}
}
