package datapath_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/datapath"
)

func TestPortRange(t *testing.T) {
	tests := []struct {
		name    string
		lo, hi  uint16
		want    string
		wantErr string
	}{
		{name: "single port", lo: 80, hi: 80, want: "[80]"},
		{name: "aligned block", lo: 8000, hi: 8015, want: "[8000-8015]"},
		{name: "service range", lo: 8000, hi: 8999, want: "[8000-8063 8064-8191 8192-8703 8704-8959 8960-8991 8992-8999]"},
		{name: "privileged", lo: 0, hi: 1023, want: "[0-1023]"},
		{name: "everything", lo: 0, hi: 65535, want: "[*]"},
		{name: "all but zero", lo: 1, hi: 65535, want: "[1 2-3 4-7 8-15 16-31 32-63 64-127 128-255 256-511 512-1023 1024-2047 2048-4095 4096-8191 8192-16383 16384-32767 32768-65535]"},
		{name: "top port", lo: 65535, hi: 65535, want: "[65535]"},
		{name: "reversed", lo: 10, hi: 9, wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := datapath.PortRange(tt.lo, tt.hi)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, datapath.ErrInvalid) {
					t.Fatalf("err = %v, want %q wrapping ErrInvalid", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != tt.want {
				t.Errorf("PortRange(%d, %d) = %s, want %s", tt.lo, tt.hi, s, tt.want)
			}
			// Every port in range is covered exactly once, none outside.
			for p := 0; p <= 65535; p++ {
				n := 0
				for _, pp := range got {
					if pp.Contains(uint16(p)) {
						n++
					}
				}
				in := p >= int(tt.lo) && p <= int(tt.hi)
				if (in && n != 1) || (!in && n != 0) {
					t.Fatalf("port %d covered %d times (in range: %v)", p, n, in)
				}
			}
		})
	}
}

func TestICMPPrefixes(t *testing.T) {
	if got := datapath.ICMPType(8); got != (datapath.PortPrefix{Port: 0x0800, Len: 8}) {
		t.Errorf("ICMPType(8) = %+v", got)
	}
	if got := datapath.ICMPTypeCode(3, 4); got != (datapath.PortPrefix{Port: 0x0304, Len: 16}) {
		t.Errorf("ICMPTypeCode(3, 4) = %+v", got)
	}
	if !datapath.ICMPType(3).Contains(0x0304) || datapath.ICMPType(3).Contains(0x0400) {
		t.Error("ICMPType(3) must contain every code of type 3 and nothing else")
	}
}

func TestPolicyEntryValidate(t *testing.T) {
	ok := datapath.PolicyEntry{
		Key:   datapath.PolicyKey{Endpoint: 1, Direction: datapath.Egress, Proto: 6, Peer: 300, Port: datapath.Port(80)},
		Value: datapath.PolicyValue{Verdict: datapath.VerdictAllow},
	}
	tests := []struct {
		name    string
		mutate  func(*datapath.PolicyEntry)
		wantErr string
	}{
		{name: "valid", mutate: func(*datapath.PolicyEntry) {}},
		{name: "endpoint zero", mutate: func(e *datapath.PolicyEntry) { e.Key.Endpoint = 0 }, wantErr: "endpoint id 0"},
		{name: "bad direction", mutate: func(e *datapath.PolicyEntry) { e.Key.Direction = 7 }, wantErr: "direction(7)"},
		{name: "host bits beyond prefix", mutate: func(e *datapath.PolicyEntry) { e.Key.Port = datapath.PortPrefix{Port: 81, Len: 8} }, wantErr: "bits set beyond"},
		{name: "prefix too long", mutate: func(e *datapath.PolicyEntry) { e.Key.Port = datapath.PortPrefix{Port: 80, Len: 17} }, wantErr: "> 16"},
		{name: "no verdict", mutate: func(e *datapath.PolicyEntry) { e.Value.Verdict = 0 }, wantErr: "none"},
		{name: "redirect without port", mutate: func(e *datapath.PolicyEntry) { e.Value.Verdict = datapath.VerdictRedirect }, wantErr: "proxy port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.mutate(&e)
			err := e.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, datapath.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q wrapping ErrInvalid", err, tt.wantErr)
			}
		})
	}
}

func TestResolvePrecedence(t *testing.T) {
	key := func(peer datapath.Identity, pp datapath.PortPrefix) datapath.PolicyKey {
		return datapath.PolicyKey{Endpoint: 1, Direction: datapath.Ingress, Proto: 6, Peer: peer, Port: pp}
	}
	allow := func(rule uint32) datapath.PolicyValue {
		return datapath.PolicyValue{Verdict: datapath.VerdictAllow, RuleID: rule}
	}
	deny := func(rule uint32) datapath.PolicyValue {
		return datapath.PolicyValue{Verdict: datapath.VerdictDeny, RuleID: rule}
	}
	redirect := func(rule uint32) datapath.PolicyValue {
		return datapath.PolicyValue{Verdict: datapath.VerdictRedirect, RuleID: rule, ProxyPort: 15001}
	}
	low := datapath.PortPrefix{Port: 0, Len: 6} // 0-1023
	tests := []struct {
		name string
		in   []datapath.PolicyEntry
		want []datapath.PolicyEntry
	}{
		{
			name: "narrow allow under broad deny becomes deny",
			in:   []datapath.PolicyEntry{{key(300, datapath.Port(80)), allow(1)}, {key(300, low), deny(2)}},
			want: []datapath.PolicyEntry{{key(300, low), deny(2)}, {key(300, datapath.Port(80)), deny(2)}},
		},
		{
			name: "narrow deny under broad allow stays",
			in:   []datapath.PolicyEntry{{key(300, datapath.Port(80)), deny(1)}, {key(300, low), allow(2)}},
			want: []datapath.PolicyEntry{{key(300, low), allow(2)}, {key(300, datapath.Port(80)), deny(1)}},
		},
		{
			name: "disjoint prefixes untouched",
			in:   []datapath.PolicyEntry{{key(300, datapath.Port(8080)), allow(1)}, {key(300, low), deny(2)}},
			want: []datapath.PolicyEntry{{key(300, low), deny(2)}, {key(300, datapath.Port(8080)), allow(1)}},
		},
		{
			name: "other peers untouched",
			in:   []datapath.PolicyEntry{{key(301, datapath.Port(80)), allow(1)}, {key(300, low), deny(2)}},
			want: []datapath.PolicyEntry{{key(300, low), deny(2)}, {key(301, datapath.Port(80)), allow(1)}},
		},
		{
			name: "redirect beats allow beneath it",
			in:   []datapath.PolicyEntry{{key(300, datapath.Port(80)), allow(1)}, {key(300, datapath.AnyPort), redirect(2)}},
			want: []datapath.PolicyEntry{{key(300, datapath.AnyPort), redirect(2)}, {key(300, datapath.Port(80)), redirect(2)}},
		},
		{
			name: "duplicate key keeps deny",
			in:   []datapath.PolicyEntry{{key(300, datapath.Port(80)), allow(1)}, {key(300, datapath.Port(80)), deny(2)}, {key(300, datapath.Port(80)), allow(3)}},
			want: []datapath.PolicyEntry{{key(300, datapath.Port(80)), deny(2)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := datapath.ResolvePrecedence(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestCIDRClassPeer(t *testing.T) {
	id, err := datapath.CIDRClassPeer(5)
	if err != nil || !id.IsCIDRClass() || id.IsCIDR() {
		t.Fatalf("CIDRClassPeer(5) = %#x, %v", id, err)
	}
	for _, c := range []uint32{0, 1 << 31} {
		if _, err := datapath.CIDRClassPeer(c); !errors.Is(err, datapath.ErrInvalid) {
			t.Errorf("CIDRClassPeer(%#x) err = %v, want ErrInvalid", c, err)
		}
	}
	if !datapath.Identity(1<<24|7).IsWorldOrCIDR() || !datapath.IdentityWorld.IsWorldOrCIDR() || datapath.Identity(300).IsWorldOrCIDR() {
		t.Error("IsWorldOrCIDR misclassifies")
	}
}

func TestCTFilterMatch(t *testing.T) {
	e := datapath.CTEntry{
		Endpoint: 1, Direction: datapath.Egress, Proto: 6,
		Src:    netip.MustParseAddrPort("10.250.1.10:40000"),
		Dst:    netip.MustParseAddrPort("10.250.2.20:80"),
		RuleID: 9, PeerIdentity: 300,
	}
	tests := []struct {
		name string
		f    datapath.CTFilter
		want bool
	}{
		{"zero matches all", datapath.CTFilter{}, true},
		{"direction", datapath.CTFilter{Directions: []datapath.Direction{datapath.Ingress}}, false},
		{"peer prefix", datapath.CTFilter{Peer: netip.MustParsePrefix("10.250.2.0/24")}, true},
		{"local address is not the peer", datapath.CTFilter{Peer: netip.MustParsePrefix("10.250.1.0/24")}, false},
		{"rule", datapath.CTFilter{RuleID: 9}, true},
		{"other rule", datapath.CTFilter{RuleID: 8}, false},
		{"identity", datapath.CTFilter{PeerIdentity: 301}, false},
		{"port and proto", datapath.CTFilter{Proto: 6, Port: 80}, true},
		{"source port is not the port", datapath.CTFilter{Port: 40000}, false},
	}
	for _, tt := range tests {
		if got := tt.f.Match(&e); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}
