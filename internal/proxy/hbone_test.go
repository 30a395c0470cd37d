package proxy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/proxy"
)

func TestParseAuthority(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "10.0.0.1:80", want: "10.0.0.1:80"},
		{in: "[fd00::1]:8080", want: "[fd00::1]:8080"},
		{in: "10.0.0.1:0", wantErr: "port 0"},
		{in: "10.0.0.1", wantErr: "authority"},
		{in: "10.0.0.1:080", wantErr: "canonical"},
		{in: "[FD00::1]:80", wantErr: "canonical"},
		{in: "[fd00:0::1]:80", wantErr: "canonical"},
		{in: "[fe80::1%eth0]:80", wantErr: "zoned"},
		{in: "[::ffff:10.0.0.1]:80", wantErr: "IPv4-mapped"},
		{in: "0.0.0.0:80", wantErr: "unicast"},
		{in: "[::]:80", wantErr: "unicast"},
		{in: "224.0.0.1:80", wantErr: "unicast"},
		{in: "web.shop:80", wantErr: "authority"},
		{in: "10.0.0.1:65536", wantErr: "authority"},
		{in: "", wantErr: "authority"},
		{in: " 10.0.0.1:80", wantErr: "authority"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := proxy.ParseAuthority(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAuthority(%q) = %v, %v; want error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("ParseAuthority(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseAuthority checks the invariants of the CONNECT authority parser
// on untrusted input: an accepted authority is a unicast address without
// zone, with a port, whose canonical spelling is the input itself (so one
// destination has one spelling for policy) and parses back to itself.
func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{
		"10.0.0.1:80",          // valid IPv4
		"[fd00::1]:8080",       // valid IPv6
		"[fe80::1%eth0]:80",    // zone: refused
		"[::ffff:1.2.3.4]:443", // IPv4-mapped: refused, it would alias 1.2.3.4
		"10.0.0.1:080",         // leading zero: a second spelling
		"[FD00::1]:80",         // upper case: a second spelling
		"host:80",              // names are never resolved
		"1.2.3.4:0",            // port 0
		"[::]:1",               // unspecified
		"1.2.3.4:65535",        // highest port
		"1.2.3.4:65536",        // out of range
		"[1:2:3:4:5:6:7:8]:9",  // full IPv6
		"1.2.3.4:80\x00",       // trailing NUL
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := proxy.ParseAuthority(s)
		if err != nil {
			return
		}
		a := ap.Addr()
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || ap.Port() == 0 {
			t.Fatalf("accepted %q as %v", s, ap)
		}
		if ap.String() != s {
			t.Fatalf("accepted %q, whose canonical form is %q", s, ap.String())
		}
		again, err := proxy.ParseAuthority(ap.String())
		if err != nil || again != ap {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

func TestHTTPAnswer(t *testing.T) {
	for _, tc := range []struct {
		name       string
		d          proxy.Decision
		wantStatus int
		wantBody   string
	}{
		{"istio default", proxy.Decision{}, 403, "RBAC: access denied"},
		{"cilium", proxy.Decision{Body: "Access denied"}, 403, "Access denied"},
		{"authentication", proxy.Decision{Status: 401}, 401, "Unauthorized"},
		{"jwt", proxy.Decision{Status: 401, Body: "Jwt is missing"}, 401, "Jwt is missing"},
		{"a success status cannot leak through a denial", proxy.Decision{Status: 200}, 403, "RBAC: access denied"},
		{"redirect neither", proxy.Decision{Status: 302, Body: "x"}, 403, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := proxy.HTTPAnswer(tc.d)
			if status != tc.wantStatus || body != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestWorkloadValidate(t *testing.T) {
	ok := proxy.Workload{Namespace: "shop", Name: "web", ServiceAccount: "web-sa", NetnsPath: "/run/netns/web", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}
	for _, tc := range []struct {
		name    string
		mod     func(w *proxy.Workload)
		wantErr string
	}{
		{"valid", func(*proxy.Workload) {}, ""},
		{"own namespace", func(w *proxy.Workload) { w.NetnsPath = "" }, ""},
		{"no namespace", func(w *proxy.Workload) { w.Namespace = "" }, "namespace is empty"},
		{"slash in name", func(w *proxy.Workload) { w.Name = "a/b" }, "contains '/'"},
		{"no service account", func(w *proxy.Workload) { w.ServiceAccount = "" }, "service account is empty"},
		{"relative netns", func(w *proxy.Workload) { w.NetnsPath = "run/netns/web" }, "not absolute"},
		{"no IPs", func(w *proxy.Workload) { w.IPs = nil }, "no IPs"},
		{"zoned IP", func(w *proxy.Workload) { w.IPs = []netip.Addr{netip.MustParseAddr("fe80::1%eth0")} }, "not a plain unicast"},
		{"unspecified IP", func(w *proxy.Workload) { w.IPs = []netip.Addr{netip.IPv4Unspecified()} }, "not a plain unicast"},
		{"invalid IP", func(w *proxy.Workload) { w.IPs = []netip.Addr{{}} }, "not a plain unicast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := ok
			tc.mod(&w)
			err := proxy.Validate(w)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}
