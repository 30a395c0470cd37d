package hbone

import (
	"errors"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// run is the connection's reader: it reads and handles frames until the
// connection fails, then fails it.
func (c *Conn) run() {
	defer close(c.done)
	go c.writeCtl()
	err := c.readLoop()
	if ce, ok := errors.AsType[http2.ConnectionError](err); ok {
		c.goAwayAndFail(http2.ErrCode(ce), err)
		return
	}
	if errors.Is(err, errRapidReset) {
		c.goAwayAndFail(http2.ErrCodeEnhanceYourCalm, err)
		return
	}
	c.fail(err)
}

func (c *Conn) readLoop() error {
	for {
		f, err := c.fr.ReadFrame()
		if c.health != nil {
			c.lastRead.Store(time.Now().UnixNano())
		}
		if err != nil {
			if se, ok := errors.AsType[http2.StreamError](err); ok {
				c.streamError(se.StreamID, se.Code)
				continue
			}
			return err
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			err = c.onData(f)
		case *http2.MetaHeadersFrame:
			err = c.onHeaders(f)
		case *http2.SettingsFrame:
			err = c.onSettings(f)
		case *http2.WindowUpdateFrame:
			err = c.onWindowUpdate(f)
		case *http2.RSTStreamFrame:
			err = c.onReset(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				c.queueCtl(ctlFrame{kind: ctlPingAck, data: f.Data})
			}
		case *http2.GoAwayFrame:
			c.onGoAway(f)
		case *http2.PushPromiseFrame:
			// Push is disabled in this side's settings.
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		// PRIORITY, PRIORITY_UPDATE and unknown frame types are ignored,
		// as RFC 9113 asks.
		if err != nil {
			return err
		}
	}
}

// streamError resets one stream after a frame of it was malformed.
func (c *Conn) streamError(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		s.abort(&ResetError{Code: code})
	}
	c.resetStream(id, code)
}

func (c *Conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length) // flow control counts the padding too
	if c.recvAvail.Add(-n) < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.mu.Lock()
	s := c.streams[f.StreamID]
	opened := c.opened(f.StreamID)
	c.mu.Unlock()
	if s == nil {
		if !opened {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		// A stream that ended or was reset here: its bytes are dropped
		// and the window given back at once.
		c.windowUpdate(0, 0, c.consumedConn(n))
		c.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		return nil
	}
	return s.receive(f.Data(), n, f.StreamEnded())
}

// opened reports whether id is a stream that was opened at some point;
// c.mu is held.
func (c *Conn) opened(id uint32) bool {
	if c.server {
		return id%2 == 1 && id <= c.lastPeerID
	}
	return id%2 == 1 && id < c.nextID
}

func (c *Conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	s := c.streams[id]
	if s == nil && c.server && id%2 == 1 && id > c.lastPeerID {
		return c.acceptLocked(f)
	}
	opened := c.opened(id)
	c.mu.Unlock()
	if s == nil {
		if !opened {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.resetStream(id, http2.ErrCodeStreamClosed)
		return nil
	}
	if f.Truncated {
		c.streamError(id, http2.ErrCodeProtocol)
		return nil
	}
	if c.server {
		// Trailers on a tunnel: only their END_STREAM means anything.
		if !f.StreamEnded() {
			c.streamError(id, http2.ErrCodeProtocol)
			return nil
		}
		return s.receive(nil, 0, true)
	}
	return s.onResponse(f)
}

// acceptLocked opens a stream the client started and runs the handler on
// it, or refuses it; c.mu is held and released here.
func (c *Conn) acceptLocked(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.lastPeerID = id
	// Running handlers count against the limit as well as open streams:
	// a stream the peer resets is gone at once, but its handler runs on
	// (authorizing, dialing the application) until it notices, and a
	// peer opening and resetting streams in a loop (rapid reset,
	// CVE-2023-44487) would otherwise start handlers without bound.
	limit := c.cfg.MaxConcurrentStreams
	refuse := c.goAway || c.err != nil || uint32(len(c.streams)) >= limit || c.running.Load() >= int64(limit)
	var s *Stream
	if !refuse {
		s = c.newStreamLocked(id, f.PseudoValue("authority"))
	}
	c.mu.Unlock()
	if refuse {
		c.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	status := 0
	switch {
	case f.Truncated:
		status = 431
	case f.PseudoValue("method") != "CONNECT":
		status = 405
	case f.PseudoValue("authority") == "" || f.PseudoValue("path") != "" || f.PseudoValue("scheme") != "" || f.PseudoValue("protocol") != "":
		// RFC 9113 8.5: a plain CONNECT has an authority and neither a
		// path nor a scheme; :protocol would be extended CONNECT.
		status = 400
	}
	if status != 0 {
		// Through the control queue: the reader never waits for the
		// write lock or the socket.
		s.responded = true
		c.mu.Lock()
		s.sentEnd = true
		c.mu.Unlock()
		c.queueCtl(ctlFrame{kind: ctlStatus, id: id, val: uint32(status)})
		s.abort(&StatusError{Status: status})
		return nil
	}
	if f.StreamEnded() {
		s.receive(nil, 0, true)
	}
	c.running.Add(1)
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		defer c.running.Add(-1)
		defer s.Close()
		c.cfg.Handler(s)
	}()
	return nil
}

func (c *Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var tableSize uint32
	var haveTableSize bool
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch st.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(st.Val) - c.peerInitWin
			c.peerInitWin = int64(st.Val)
			for _, s := range c.streams {
				s.sendWin += delta
				if s.sendWin > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.sendCond.Broadcast()
		case http2.SettingMaxConcurrentStreams:
			c.peerMaxStreams = st.Val
		case http2.SettingHeaderTableSize:
			tableSize, haveTableSize = st.Val, true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if haveTableSize {
		c.queueCtl(ctlFrame{kind: ctlSettingsAckTable, val: tableSize})
	} else {
		c.queueCtl(ctlFrame{kind: ctlSettingsAck})
	}
	return nil
}

func (c *Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWin += inc
		if c.sendWin > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	} else if s := c.streams[f.StreamID]; s != nil {
		s.sendWin += inc
		if s.sendWin > 1<<31-1 {
			c.mu.Unlock()
			c.streamError(f.StreamID, http2.ErrCodeFlowControl)
			c.mu.Lock()
			return nil
		}
	}
	c.sendCond.Broadcast()
	return nil
}

// onReset takes the peer's RST_STREAM. On the server, resets of streams
// not answered yet are counted, and too many of them fail the connection
// with errRapidReset.
func (c *Conn) onReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	if c.server {
		s.mu.Lock()
		early := !s.responded
		s.mu.Unlock()
		if early && c.tooManyEarlyResets() {
			return errRapidReset
		}
	}
	s.peerReset(f.ErrCode)
	return nil
}

// errRapidReset ends a connection whose client resets streams before
// their answer faster than a client has reason to; the client is told
// with GOAWAY ENHANCE_YOUR_CALM.
var errRapidReset = errors.New("hbone: peer resets too many streams before their answer")

// minEarlyResets is the least number of early resets (see
// tooManyEarlyResets) allowed in a second, for small stream limits.
const minEarlyResets = 100

// tooManyEarlyResets counts a reset of a stream the handler has not
// answered yet, and reports whether there were more than
// MaxConcurrentStreams (at least minEarlyResets) in the current second.
// The handler limit bounds what such resets cost at once, but each
// stream still makes a handler start work (authorize, dial), so a peer
// that keeps doing it is ended, as Go's, nghttp2's and Netty's fixes for
// rapid reset do in their ways. A well-behaved client resets a stream
// before its answer only when it gives up waiting for it, and has at
// most MaxConcurrentStreams to give up on. Reader only.
func (c *Conn) tooManyEarlyResets() bool {
	now := time.Now()
	if now.Sub(c.earlyResetsSince) >= time.Second {
		c.earlyResetsSince, c.earlyResets = now, 0
	}
	c.earlyResets++
	return c.earlyResets > max(c.cfg.MaxConcurrentStreams, minEarlyResets)
}

// onGoAway stops new streams; streams the server never processed (above
// its last stream ID) fail with ErrConnClosed so that callers retry them
// elsewhere.
func (c *Conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goAway = true
	var lost []*Stream
	for id, s := range c.streams {
		if !c.server && id > f.LastStreamID {
			lost = append(lost, s)
		}
	}
	empty := len(c.streams) == len(lost)
	c.mu.Unlock()
	for _, s := range lost {
		s.abort(ErrConnClosed)
	}
	if empty && !c.server {
		go c.Close()
	}
}

// hpackStatus is the :status field of a response.
func hpackStatus(status int) hpack.HeaderField {
	return hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)}
}
