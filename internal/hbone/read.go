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
		c.mu.Lock()
		last := c.lastPeerID
		c.mu.Unlock()
		code := http2.ErrCode(ce)
		c.queueCtl(func(f *http2.Framer) error { return f.WriteGoAway(last, code, nil) })
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
			c.onReset(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				c.queueCtl(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
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
	refuse := c.goAway || c.err != nil || uint32(len(c.streams)) >= c.cfg.MaxConcurrentStreams
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
		// Queued, not written here: the reader never waits for the
		// write lock.
		s.responded = true
		c.mu.Lock()
		s.sentEnd = true
		c.mu.Unlock()
		c.queueCtl(func(fr *http2.Framer) error {
			c.hbuf.Reset()
			c.henc.WriteField(hpackStatus(status))
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true, EndStream: true})
		})
		s.abort(&StatusError{Status: status})
		return nil
	}
	if f.StreamEnded() {
		s.receive(nil, 0, true)
	}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
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
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = int(st.Val)
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
	c.queueCtl(func(fr *http2.Framer) error {
		if haveTableSize {
			// The encoder is used under the write lock, which this runs
			// under, before the acknowledgement as RFC 7541 requires.
			c.henc.SetMaxDynamicTableSizeLimit(tableSize)
		}
		return fr.WriteSettingsAck()
	})
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

func (c *Conn) onReset(f *http2.RSTStreamFrame) {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	c.mu.Unlock()
	if s != nil {
		s.peerReset(f.ErrCode)
	}
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
