package endpoint_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/endpoint"
)

func mustIPAM(t *testing.T, path, cidr4, cidr6 string) *endpoint.IPAM {
	t.Helper()
	a, err := endpoint.OpenIPAM(path, prefix(cidr4), prefix(cidr6))
	if err != nil {
		t.Fatalf("open IPAM: %v", err)
	}
	return a
}

func prefix(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	return netip.MustParsePrefix(s)
}

// TestIPAMNeverHandsOutReserved exhausts small pools and checks that the
// network, gateway and broadcast addresses (IPv4) and the anycast and
// gateway addresses (IPv6) never come out.
func TestIPAMNeverHandsOutReserved(t *testing.T) {
	tests := []struct {
		name  string
		cidr4 string
		cidr6 string
		want4 []string
		want6 []string
	}{
		{name: "v4 /30", cidr4: "10.9.0.0/30", want4: []string{"10.9.0.2"}},
		{name: "v4 /29", cidr4: "10.9.0.8/29", want4: []string{"10.9.0.10", "10.9.0.11", "10.9.0.12", "10.9.0.13", "10.9.0.14"}},
		{name: "v6 /126", cidr6: "fd00:9::/126", want6: []string{"fd00:9::2", "fd00:9::3"}},
		{name: "dual stack, smaller pool limits", cidr4: "10.9.0.0/30", cidr6: "fd00:9::/64", want4: []string{"10.9.0.2"}, want6: []string{"fd00:9::2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustIPAM(t, filepath.Join(t.TempDir(), "ipam.json"), tt.cidr4, tt.cidr6)
			var got4, got6 []string
			for i := 0; ; i++ {
				al, err := a.Allocate("default/p")
				if errors.Is(err, endpoint.ErrExhausted) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if i > 10 {
					t.Fatal("pool never ran out")
				}
				if al.IPv4.IsValid() {
					got4 = append(got4, al.IPv4.String())
				}
				if al.IPv6.IsValid() {
					got6 = append(got6, al.IPv6.String())
				}
			}
			if strings.Join(got4, ",") != strings.Join(tt.want4, ",") {
				t.Errorf("IPv4: got %v, want %v", got4, tt.want4)
			}
			if strings.Join(got6, ",") != strings.Join(tt.want6, ",") {
				t.Errorf("IPv6: got %v, want %v", got6, tt.want6)
			}
		})
	}
}

// TestIPAMRoundRobin checks that released addresses and ids are reused
// last, and that allocation wraps around to them.
func TestIPAMRoundRobin(t *testing.T) {
	a := mustIPAM(t, filepath.Join(t.TempDir(), "ipam.json"), "10.9.0.0/29", "fd00:9::/64")
	var als []endpoint.Allocation
	for range 3 {
		al, err := a.Allocate("default/p")
		if err != nil {
			t.Fatal(err)
		}
		als = append(als, al)
	}
	if err := a.Release(als[0].ID); err != nil {
		t.Fatal(err)
	}
	next, err := a.Allocate("default/q")
	if err != nil {
		t.Fatal(err)
	}
	if next.IPv4 != netip.MustParseAddr("10.9.0.5") || next.IPv6 != netip.MustParseAddr("fd00:9::5") || next.ID != 4 {
		t.Errorf("after releasing the first: got %+v, want id 4, 10.9.0.5, fd00:9::5", next)
	}
	// 10.9.0.6 is the last usable; after it comes the released .2.
	if _, err := a.Allocate("default/r"); err != nil {
		t.Fatal(err)
	}
	wrapped, err := a.Allocate("default/s")
	if err != nil {
		t.Fatal(err)
	}
	if wrapped.IPv4 != als[0].IPv4 {
		t.Errorf("wrap-around: got %v, want %v", wrapped.IPv4, als[0].IPv4)
	}
	if err := a.Release(999); err != nil {
		t.Errorf("releasing an unknown id: %v", err)
	}
}

// TestIPAMPersists reopens the file and expects the same allocations, a
// 0600 file, and no reuse of an allocated address.
func TestIPAMPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	a := mustIPAM(t, path, "10.9.0.0/16", "fd00:9::/64")
	first, err := a.Allocate("ns/one")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b := mustIPAM(t, path, "10.9.0.0/16", "fd00:9::/64")
	got, ok := b.Get(first.ID)
	if !ok || got != first {
		t.Fatalf("after reopen: got %+v %v, want %+v", got, ok, first)
	}
	second, err := b.Allocate("ns/two")
	if err != nil {
		t.Fatal(err)
	}
	if second.IPv4 == first.IPv4 || second.IPv6 == first.IPv6 || second.ID == first.ID {
		t.Errorf("reused an allocation: %+v and %+v", first, second)
	}
	if n := len(b.Allocations()); n != 2 {
		t.Errorf("%d allocations, want 2", n)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestIPAMCIDRChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipam.json")
	a := mustIPAM(t, path, "10.9.0.0/16", "")
	al, err := a.Allocate("ns/one")
	if err != nil {
		t.Fatal(err)
	}
	// Changing a CIDR in use keeps the old one in effect and refuses new
	// allocations, but opening works (to restore, delete, clean up).
	changed := mustIPAM(t, path, "10.10.0.0/16", "")
	if v4, _ := changed.Pools(); v4 != prefix("10.9.0.0/16") {
		t.Errorf("pool in effect %v, want the old 10.9.0.0/16", v4)
	}
	if _, err := changed.Allocate("ns/x"); err == nil || !strings.Contains(err.Error(), "cannot switch") || !errors.Is(err, endpoint.ErrInvalid) {
		t.Fatalf("allocating after a CIDR change: got %v, want ErrInvalid with a refusal", err)
	}
	if got, ok := changed.Get(al.ID); !ok || got != al {
		t.Errorf("allocation lost: %+v", got)
	}
	// IPv6 had nothing allocated, so it may be turned on.
	b := mustIPAM(t, path, "10.9.0.0/16", "fd00:9::/64")
	if err := b.Release(al.ID); err != nil {
		t.Fatal(err)
	}
	c := mustIPAM(t, path, "10.10.0.0/16", "fd00:9::/64")
	al, err = c.Allocate("ns/two")
	if err != nil {
		t.Fatal(err)
	}
	if !prefix("10.10.0.0/16").Contains(al.IPv4) {
		t.Errorf("got %v outside the new CIDR", al.IPv4)
	}
}

func TestIPAMRejectsBadCIDRs(t *testing.T) {
	tests := []struct {
		name, cidr4, cidr6, wantErr string
	}{
		{"host bits", "10.9.0.1/16", "", "host bits"},
		{"v4 too small", "10.9.0.0/31", "", "too small"},
		{"v6 too small", "", "fd00::/127", "too small"},
		{"v6 in v4 slot", "fd00::/64", "", "not an IPv4"},
		{"v4 in v6 slot", "", "10.0.0.0/8", "not an IPv6"},
		{"link-local v4", "169.254.0.0/16", "", "not a unicast"},
		{"link-local v6", "", "fe80::/64", "not a unicast"},
		{"contains the gateway", "169.0.0.0/8", "", "not a unicast"},
		{"loopback", "127.0.0.0/8", "", "not a unicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := endpoint.OpenIPAM(filepath.Join(t.TempDir(), "ipam.json"), prefix(tt.cidr4), prefix(tt.cidr6))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, endpoint.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid with %q", err, tt.wantErr)
			}
		})
	}
}

func TestIPAMRejectsCorruptState(t *testing.T) {
	tests := []struct{ name, file, wantErr string }{
		{"not json", "{", "ipam.json"},
		{"wrong version", `{"version": 9}`, "version 9"},
		{"duplicate address", `{"version":1,"podCIDR4":"10.9.0.0/16","allocations":{
			"1":{"id":1,"owner":"a/a","ipv4":"10.9.0.2"},"2":{"id":2,"owner":"a/b","ipv4":"10.9.0.2"}}}`, "allocated to both"},
		{"id mismatch", `{"version":1,"allocations":{"1":{"id":2,"owner":"a/a"}}}`, "has id 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ipam.json")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := endpoint.OpenIPAM(path, prefix("10.9.0.0/16"), netip.Prefix{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
