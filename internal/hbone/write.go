package hbone

import (
	"errors"

	"golang.org/x/net/http2"
)

// maxQueuedControlFrames bounds the control frames waiting for the socket,
// the limit x/net/http2's server has: a peer that keeps causing frames
// (PINGs and SETTINGS to acknowledge, frames answered with RST_STREAM) and
// does not read would otherwise grow the queue without bound. A peer that
// reads never comes near it: frames queue only while the socket is full,
// and what a well-behaved peer causes in that time is a few per stream.
const maxQueuedControlFrames = 10000

// errControlFlood ends a connection whose control frames reached
// maxQueuedControlFrames; the peer is told with GOAWAY ENHANCE_YOUR_CALM
// if the socket takes it.
var errControlFlood = errors.New("hbone: too many control frames queued for a peer that does not read")

// ctlKind is the type of a queued control frame.
type ctlKind uint8

const (
	ctlWindowUpdate     ctlKind = iota // WINDOW_UPDATE of val bytes on id (0: the connection)
	ctlReset                           // RST_STREAM on id with code val
	ctlPing                            // PING with data
	ctlPingAck                         // PING ACK with data
	ctlSettingsAck                     // SETTINGS ACK
	ctlSettingsAckTable                // SETTINGS ACK, after the encoder's table size limit becomes val
	ctlStatus                          // HEADERS :status val with END_STREAM on id
)

// ctlFrame is a control frame waiting to be written. Frames are queued as
// values rather than closures so that queueing one does not allocate.
type ctlFrame struct {
	kind ctlKind
	id   uint32
	val  uint32
	data [8]byte
}

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

// writeStatus writes a HEADERS frame with :status alone, ending the stream
// if end.
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

// queueCtl has a control frame written as soon as possible, and never
// waits for the write lock or the socket; see sendCtl.
func (c *Conn) queueCtl(f ctlFrame) {
	if !c.pushCtl(&f, 0) {
		return
	}
	c.sendCtl()
}

// windowUpdate queues WINDOW_UPDATE frames returning n bytes on the
// stream id (0: none) and conn bytes on the connection (0: none).
// Connection increments queued before the next write are merged into one
// frame.
func (c *Conn) windowUpdate(id uint32, n, conn int64) {
	if n == 0 && conn == 0 {
		return
	}
	var f *ctlFrame
	if n > 0 {
		f = &ctlFrame{kind: ctlWindowUpdate, id: id, val: uint32(n)}
	}
	if !c.pushCtl(f, conn) {
		return
	}
	c.sendCtl()
}

// resetStream queues RST_STREAM for id.
func (c *Conn) resetStream(id uint32, code http2.ErrCode) {
	c.queueCtl(ctlFrame{kind: ctlReset, id: id, val: uint32(code)})
}

// pushCtl appends f (if not nil) to the control queue and adds conn to the
// connection window to return. It reports false when the connection is
// ending, or has just been failed because the queue is full.
func (c *Conn) pushCtl(f *ctlFrame, conn int64) bool {
	select {
	case <-c.closing:
		// Nothing more is written; fail's aborts come through here too.
		return false
	default:
	}
	c.ctlMu.Lock()
	if f != nil {
		if len(c.ctl)-c.ctlHead >= maxQueuedControlFrames {
			c.ctlMu.Unlock()
			c.goAwayAndFail(http2.ErrCodeEnhanceYourCalm, errControlFlood)
			return false
		}
		c.ctl = append(c.ctl, *f)
	}
	// The connection window is at most connWindow, so the sum fits an
	// increment.
	c.ctlConnWin += conn
	c.ctlPending.Store(true)
	c.ctlMu.Unlock()
	return true
}

// popCtl takes the next control frame to write: the merged connection
// window first, then the queue in order.
func (c *Conn) popCtl() (ctlFrame, bool) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	var f ctlFrame
	switch {
	case c.ctlConnWin > 0:
		f = ctlFrame{kind: ctlWindowUpdate, val: uint32(c.ctlConnWin)}
		c.ctlConnWin = 0
	case c.ctlHead < len(c.ctl):
		f = c.ctl[c.ctlHead]
		c.ctlHead++
		if c.ctlHead == len(c.ctl) {
			// Emptied: append from the start again, in the same array
			// unless a flood grew it.
			c.ctl, c.ctlHead = c.ctl[:0], 0
			if cap(c.ctl) > 256 {
				c.ctl = nil
			}
		}
	default:
		c.ctlPending.Store(false)
		return f, false
	}
	c.ctlPending.Store(c.ctlConnWin > 0 || c.ctlHead < len(c.ctl))
	return f, true
}

// sendCtl hands the queued control frames to the control goroutine, or
// to a writer that takes the write lock first; it never writes itself.
//
// The reader sends its frames (window updates, acknowledgements, resets)
// through here, and it must never block on the socket: a reader stuck in
// a write stops reading, and if the peer's reader is stuck the same way,
// each waits for the other to read and the connection deadlocks (until a
// PING times out, if pings are on). Both sockets fill when both peers
// send bulk data, so this is not far-fetched, and a peer that does not
// read at all would stop this side's reader for as long as it likes. A
// write cannot be made safe here: even after poll(2) reports room, a
// small write on a nearly full socket may take part of it, and the rest
// then waits. Control frames are rare (windows are returned when half is
// used, every 512 KiB of a stream), so the wake-up of another goroutine
// costs nothing measurable.
func (c *Conn) sendCtl() {
	select {
	case c.ctlKick <- struct{}{}:
	default:
	}
}

// ctlBatch is the most bytes of control frames written at once, in one
// write (and TLS record).
const ctlBatch = 16 << 10

// flushCtlLocked writes the queued control frames, waiting for the
// socket; c.wmu is held.
func (c *Conn) flushCtlLocked() error {
	for c.ctlPending.Load() {
		c.cbuf.Reset()
		for c.cbuf.Len() < ctlBatch {
			f, ok := c.popCtl()
			if !ok {
				break
			}
			c.encodeCtl(&f)
		}
		if c.cbuf.Len() == 0 {
			break
		}
		if _, err := c.nc.Write(c.cbuf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// encodeCtl appends one control frame to c.cbuf; c.wmu is held. Writes
// to the buffer cannot fail, and every frame queued is valid.
func (c *Conn) encodeCtl(f *ctlFrame) {
	switch f.kind {
	case ctlWindowUpdate:
		c.cfr.WriteWindowUpdate(f.id, f.val)
	case ctlReset:
		c.cfr.WriteRSTStream(f.id, http2.ErrCode(f.val))
	case ctlPing:
		c.cfr.WritePing(false, f.data)
	case ctlPingAck:
		c.cfr.WritePing(true, f.data)
	case ctlSettingsAckTable:
		// The encoder is used under the write lock, as here, and the
		// limit must apply before the acknowledgement (RFC 7541 4.2):
		// header blocks encoded from now on go out after it.
		c.henc.SetMaxDynamicTableSizeLimit(f.val)
		c.cfr.WriteSettingsAck()
	case ctlSettingsAck:
		c.cfr.WriteSettingsAck()
	case ctlStatus:
		c.hbuf.Reset()
		c.henc.WriteField(hpackStatus(int(f.val)))
		c.cfr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true, EndStream: true})
	}
}

// writeCtl is the control goroutine: it writes the queued frames no
// writer took along, until the connection ends.
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
