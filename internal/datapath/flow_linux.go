package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
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
		poll := time.Now().Add(flushInterval)
		userDeadline := !r.deadline.IsZero() && !r.deadline.After(poll)
		if userDeadline {
			poll = r.deadline
		}
		r.rd.SetDeadline(poll)
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
			return DecodeFlow(r.rec.RawSample)
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

// DecodeFlow decodes one raw flow event as written by the datapath.
func DecodeFlow(raw []byte) (Flow, error) {
	var ev bpfFlowEvent
	if _, err := binary.Decode(raw, binary.NativeEndian, &ev); err != nil {
		return Flow{}, fmt.Errorf("decode flow event of %d bytes: %w", len(raw), err)
	}
	return Flow{
		Time:        bootTime(ev.Timestamp),
		Endpoint:    EndpointID(ev.Endpoint),
		Direction:   Direction(ev.Direction),
		Src:         bytesAddr(ev.Family, ev.Saddr),
		Dst:         bytesAddr(ev.Family, ev.Daddr),
		SrcPort:     ev.Sport,
		DstPort:     ev.Dport,
		Proto:       ev.Proto,
		SrcIdentity: Identity(ev.SrcIdentity),
		DstIdentity: Identity(ev.DstIdentity),
		Verdict:     FlowVerdict(ev.Verdict),
		Reason:      DropReason(ev.Reason),
		RuleID:      ev.RuleId,
		Length:      ev.Length,
		ProxyPort:   ev.ProxyPort,
		CTStatus:    CTStatus(ev.CtStatus),
		TCPFlags:    ev.TcpFlags,
	}, nil
}
