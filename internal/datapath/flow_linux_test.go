package datapath

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// referenceFlow decodes raw the slow, obviously right way: binary.Decode
// into the struct bpf2go generated from the C, as the reader once did.
func referenceFlow(t *testing.T, raw []byte, c *bootClock) Flow {
	t.Helper()
	var ev bpfFlowEvent
	if _, err := binary.Decode(raw, binary.NativeEndian, &ev); err != nil {
		t.Fatal(err)
	}
	return Flow{
		Time:        c.time(ev.Timestamp),
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
	}
}

// TestDecodeFlow checks the field-by-field decoder against binary.Decode
// of the generated struct, so that a change of struct flow_event that is
// not carried into decodeFlow fails here.
func TestDecodeFlow(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(family bpfFamily) []byte {
		raw := make([]byte, flowEventSize)
		for i := range raw {
			raw[i] = byte(rnd.Uint32())
		}
		raw[35] = byte(family)
		return raw
	}
	var c bootClock
	c.at(time.Now())
	tests := []struct {
		name   string
		raw    []byte
		family bool // addresses must be valid
	}{
		{"zero", make([]byte, flowEventSize), false},
		{"ipv4", random(bpfFamilyFAMILY_IPV4), true},
		{"ipv6", random(bpfFamilyFAMILY_IPV6), true},
		{"unknown family", random(9), false},
		{"longer than an event", append(random(bpfFamilyFAMILY_IPV4), 1, 2, 3), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Flow
			if err := decodeFlow(tt.raw, &c, &got); err != nil {
				t.Fatal(err)
			}
			if want := referenceFlow(t, tt.raw, &c); got != want {
				t.Errorf("decodeFlow = %+v\nwant %+v", got, want)
			}
			if got.Src.IsValid() != tt.family || got.Dst.IsValid() != tt.family {
				t.Errorf("addresses %v, %v: valid = %v, want %v", got.Src, got.Dst, got.Src.IsValid(), tt.family)
			}
		})
	}
	if err := decodeFlow(make([]byte, flowEventSize-1), &c, new(Flow)); err == nil {
		t.Error("decodeFlow accepted a short event")
	}
}

// TestBootClock checks that converted timestamps are the wall-clock time
// of the boot-clock instant, and that the offset is read again once it is
// older than bootClockRefresh.
func TestBootClock(t *testing.T) {
	var c bootClock
	now := time.Now()
	c.at(now)
	if d := time.Until(c.time(bootNow())).Abs(); d > 10*time.Millisecond {
		t.Errorf("boot clock now is %v off the wall clock", d)
	}
	first := c.read
	c.at(now.Add(bootClockRefresh / 2))
	if c.read != first {
		t.Error("offset read again before bootClockRefresh")
	}
	c.at(now.Add(bootClockRefresh))
	if c.read == first {
		t.Error("offset not read again after bootClockRefresh")
	}
}

// BenchmarkDecodeFlow is the reader's CPU per flow event after the ring
// buffer copy.
func BenchmarkDecodeFlow(b *testing.B) {
	raw := make([]byte, flowEventSize)
	raw[35] = byte(bpfFamilyFAMILY_IPV4)
	copy(raw[40:], netip.MustParseAddr("10.0.0.1").AsSlice())
	var (
		c bootClock
		f Flow
	)
	for b.Loop() {
		if err := decodeFlow(raw, c.at(time.Now()), &f); err != nil {
			b.Fatal(err)
		}
	}
}
