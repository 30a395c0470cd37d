package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// FlowReader decodes flow events from the datapath's ring buffer. A ring
// buffer has one consumer: two readers on the same datapath split the
// events between them, so the agent runs one and fans out in userspace.
type FlowReader struct {
	rd  *ringbuf.Reader
	rec ringbuf.Record
}

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
func (r *FlowReader) SetDeadline(t time.Time) { r.rd.SetDeadline(t) }

// Read blocks until the next flow event and decodes it. It returns an error
// wrapping ErrClosed after Close.
func (r *FlowReader) Read() (Flow, error) {
	if err := r.rd.ReadInto(&r.rec); err != nil {
		if errors.Is(err, ringbuf.ErrClosed) {
			return Flow{}, fmt.Errorf("read flow: %w", ErrClosed)
		}
		return Flow{}, fmt.Errorf("read flow: %w", err)
	}
	return DecodeFlow(r.rec.RawSample)
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
