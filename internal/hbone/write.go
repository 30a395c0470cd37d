package hbone

import "golang.org/x/net/http2"

// writeData writes one DATA frame. The caller has taken len(b) from the
// send windows and keeps b no longer than the peer's frame size.
func (c *Conn) writeData(id uint32, end bool, b []byte) error {
	c.wmu.Lock()
	err := c.flushCtlLocked()
	if err == nil {
		err = c.wfr.WriteData(id, end, b)
	}
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return ErrConnClosed
	}
	return nil
}

// writeHeaders writes a header block of response fields, or of trailers.
func (c *Conn) writeStatus(id uint32, status int, end bool) error {
	c.wmu.Lock()
	err := c.flushCtlLocked()
	if err == nil {
		c.hbuf.Reset()
		c.henc.WriteField(hpackStatus(status))
		err = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true, EndStream: end})
	}
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return ErrConnClosed
	}
	return nil
}

// queueCtl has frame written as soon as possible without waiting for the
// write lock: by this goroutine if the lock is free, else by the writer
// that holds it or by the control goroutine. The reader sends everything
// through here, so it never blocks behind a writer stuck on a full socket
// (whose peer may be stuck the same way, waiting for this reader).
func (c *Conn) queueCtl(frame func(*http2.Framer) error) {
	c.ctlMu.Lock()
	c.ctl = append(c.ctl, frame)
	c.ctlPending.Store(true)
	c.ctlMu.Unlock()
	if c.wmu.TryLock() {
		err := c.flushCtlLocked()
		c.wmu.Unlock()
		if err != nil {
			c.fail(err)
		}
		return
	}
	select {
	case c.ctlKick <- struct{}{}:
	default:
	}
}

// flushCtlLocked writes the queued control frames; c.wmu is held.
func (c *Conn) flushCtlLocked() error {
	if !c.ctlPending.Load() {
		return nil
	}
	c.ctlMu.Lock()
	frames := c.ctl
	c.ctl = nil
	c.ctlPending.Store(false)
	c.ctlMu.Unlock()
	for _, f := range frames {
		if err := f(c.wfr); err != nil {
			return err
		}
	}
	return nil
}

// writeCtl is the control goroutine: it writes queued frames that found
// the write lock taken, until the connection ends.
func (c *Conn) writeCtl() {
	for {
		select {
		case <-c.ctlKick:
			c.wmu.Lock()
			err := c.flushCtlLocked()
			c.wmu.Unlock()
			if err != nil {
				c.fail(err)
				return
			}
		case <-c.closing:
			return
		}
	}
}

// windowUpdate queues WINDOW_UPDATE frames returning n bytes on the
// stream id (0: none) and conn bytes on the connection (0: none).
func (c *Conn) windowUpdate(id uint32, n, conn int64) {
	if n == 0 && conn == 0 {
		return
	}
	c.queueCtl(func(f *http2.Framer) error {
		if conn > 0 {
			if err := f.WriteWindowUpdate(0, uint32(conn)); err != nil {
				return err
			}
		}
		if n > 0 {
			return f.WriteWindowUpdate(id, uint32(n))
		}
		return nil
	})
}

// consumedConn accounts n bytes of DATA the connection no longer holds
// and returns how many to give back to the peer now: the connection's
// window is returned once half of it is used.
func (c *Conn) consumedConn(n int64) int64 {
	if n == 0 {
		return 0
	}
	if c.recvUnacked.Add(n) < connWindow/2 {
		return 0
	}
	back := c.recvUnacked.Swap(0)
	c.recvAvail.Add(back)
	return back
}

// resetStream queues RST_STREAM for id.
func (c *Conn) resetStream(id uint32, code http2.ErrCode) {
	c.queueCtl(func(f *http2.Framer) error { return f.WriteRSTStream(id, code) })
}
