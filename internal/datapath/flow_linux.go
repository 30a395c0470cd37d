package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// FlowReader decodes flow events from the datapath's ring buffer. A ring
// buffer has one consumer: two readers on the same datapath split the
// events between them, so the agent runs one and fans out in userspace.
//
// The programs do not wake the reader for every event (see emit in
// bpf/datapath.c): they wake it once a batch has accumulated, and Read
// polls the ring every flushInterval in between. An event therefore
// reaches Read at most flushInterval after it was written.
type FlowReader struct {
	rd       *ringbuf.Reader
	rec      ringbuf.Record
	deadline time.Time // the caller's; zero: none
	clock    bootClock
}

// flushInterval bounds how long an event can wait in the ring buffer when
// too few arrive to wake the reader.
const flushInterval = 50 * time.Millisecond

// NewFlowReader opens a reader on the flow ring buffer.
func (d *Datapath) NewFlowReader() (*FlowReader, error) {
	rd, err := ringbuf.NewReader(d.maps.Events)
	if err != nil {
		return nil, fmt.Errorf("open flow reader: %w", err)
	}
	return &FlowReader{rd: rd}, nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t; the zero
// time waits forever.
func (r *FlowReader) SetDeadline(t time.Time) { r.deadline = t }

// Read blocks until the next flow event and decodes it. It returns an error
// wrapping ErrClosed after Close.
func (r *FlowReader) Read() (Flow, error) {
	for {
		now := time.Now()
		poll := now.Add(flushInterval)
		userDeadline := !r.deadline.IsZero() && !r.deadline.After(poll)
		if userDeadline {
			poll = r.deadline
		}
		r.rd.SetDeadline(poll)
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
			var f Flow
			if err := decodeFlow(r.rec.RawSample, r.clock.at(now), &f); err != nil {
				return Flow{}, err
			}
			return f, nil
		case errors.Is(err, os.ErrDeadlineExceeded) && !userDeadline:
			continue // the poll timer: look again
		case errors.Is(err, ringbuf.ErrClosed):
			return Flow{}, fmt.Errorf("read flow: %w", ErrClosed)
		}
		return Flow{}, fmt.Errorf("read flow: %w", err)
	}
}

// Close stops the reader and unblocks a pending Read.
func (r *FlowReader) Close() error { return r.rd.Close() }

// bootClock converts the programs' CLOCK_BOOTTIME timestamps to wall-clock
// time with an offset that is read again at most once a second: reading
// both clocks for every event cost more than decoding it (x/sys/unix's
// ClockGettime is a system call, not the vDSO). An event's time can
// therefore be off by a clock step made in the last second.
type bootClock struct {
	wall time.Time // wall-clock time at boot nanoseconds boot
	boot uint64
	read time.Time // when wall and boot were read
}

// bootClockRefresh is how long a bootClock offset is used before it is
// read again.
const bootClockRefresh = time.Second

// at returns the clock to convert with, reading it again when it is older
// than bootClockRefresh at now.
func (c *bootClock) at(now time.Time) *bootClock {
	if c.read.IsZero() || now.Sub(c.read) >= bootClockRefresh || now.Before(c.read) {
		c.boot = bootNow()
		c.wall = time.Now()
		c.read = now
	}
	return c
}

// time converts CLOCK_BOOTTIME nanoseconds to wall-clock time.
func (c *bootClock) time(ns uint64) time.Time {
	return c.wall.Add(time.Duration(int64(ns) - int64(c.boot)))
}

// flowEventSize is sizeof(struct flow_event); TestLayouts pins it.
const flowEventSize = 72

// decodeFlow decodes struct flow_event field by field at its C offsets
// (bpf/types.h). binary.Decode into the generated struct did the same by
// reflection and cost about 1 µs per event, which on a node opening
// thousands of connections a second was most of the reader's CPU;
// TestDecodeFlow checks both agree.
func decodeFlow(raw []byte, c *bootClock, f *Flow) error {
	if len(raw) < flowEventSize {
		return fmt.Errorf("decode flow event of %d bytes: %w", len(raw), io.ErrUnexpectedEOF)
	}
	ne := binary.NativeEndian
	family := bpfFamily(raw[35])
	*f = Flow{
		Time:        c.time(ne.Uint64(raw[0:])),
		SrcIdentity: Identity(ne.Uint32(raw[8:])),
		DstIdentity: Identity(ne.Uint32(raw[12:])),
		RuleID:      ne.Uint32(raw[16:]),
		Length:      ne.Uint32(raw[20:]),
		Endpoint:    EndpointID(ne.Uint16(raw[24:])),
		SrcPort:     ne.Uint16(raw[26:]),
		DstPort:     ne.Uint16(raw[28:]),
		ProxyPort:   ne.Uint16(raw[30:]),
		Direction:   Direction(raw[32]),
		Verdict:     FlowVerdict(raw[33]),
		Reason:      DropReason(raw[34]),
		Proto:       raw[36],
		CTStatus:    CTStatus(raw[37]),
		TCPFlags:    raw[38],
		Src:         bytesAddr(family, [16]byte(raw[40:56])),
		Dst:         bytesAddr(family, [16]byte(raw[56:72])),
	}
	return nil
}
