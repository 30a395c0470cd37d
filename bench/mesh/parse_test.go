package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{name: "three fields", in: "944023 1200 17\n", want: 944023},
		{name: "empty", in: "", wantErr: true},
		{name: "not a number", in: "x 0 0", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseSchedstat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: parseSchedstat(%q) = %v, %v", tt.name, tt.in, got, err)
		}
	}
}

func TestParseSmapsRollup(t *testing.T) {
	in := `563c8a185000-7ffe21193000 ---p 00000000 00:00 0                          [rollup]
Rss:                1704 kB
Pss:                 480 kB
Pss_Dirty:           112 kB
Shared_Clean:       1592 kB
Private_Clean:         8 kB
Private_Dirty:       104 kB
`
	m, err := parseSmapsRollup([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if m.rss != 1704*1024 || m.private != 112*1024 {
		t.Errorf("parseSmapsRollup = %+v, want rss 1704 KiB, private 112 KiB", m)
	}
	if _, err := parseSmapsRollup([]byte("Rss: 1 kB\n")); err == nil {
		t.Error("parseSmapsRollup accepted a file without Private lines")
	}
	if _, err := parseSmapsRollup([]byte("Rss: 1 MB\nPrivate_Clean: 0 kB\nPrivate_Dirty: 0 kB\n")); err == nil {
		t.Error("parseSmapsRollup accepted a unit other than kB")
	}
}

func TestParentPID(t *testing.T) {
	tests := []struct {
		name, stat string
		want       int
		wantErr    bool
	}{
		{name: "plain", stat: "1234 (nginx) S 1200 1234 1200 0 -1", want: 1200},
		{name: "command with spaces and parentheses", stat: "1234 (a) b (c) S 77 1234 1200 0", want: 77},
		{name: "no command", stat: "1234 S 77", wantErr: true},
		{name: "truncated", stat: "1234 (x) S", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parentPID([]byte(tt.stat))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: parentPID = %d, %v", tt.name, got, err)
		}
	}
}

func TestNginxConf(t *testing.T) {
	pki := nginxPKI{root: "/d/root.pem", clientCert: "/d/c.pem", clientKey: "/d/c-key.pem", serverCert: "/d/s.pem", serverKey: "/d/s-key.pem"}
	client := nginxConf(nginxSide{name: clientName, listen: netip.MustParseAddrPort("127.0.0.31:1000"), upstream: netip.MustParseAddrPort("127.0.0.32:2000"), pki: pki}, "/d")
	server := nginxConf(nginxSide{name: serverName, listen: netip.MustParseAddrPort("127.0.0.32:2000"), upstream: netip.MustParseAddrPort("127.0.0.32:3000"), pki: pki}, "/d")
	for _, tt := range []struct {
		side, conf string
		want       []string
		not        []string
	}{
		{"client", client, []string{
			"worker_processes 1;", "listen 127.0.0.31:1000;", "server 127.0.0.32:2000;", "keepalive 64;",
			"proxy_pass https://next_hop;", "proxy_ssl_certificate /d/c.pem;", "proxy_ssl_trusted_certificate /d/root.pem;",
			"proxy_ssl_verify on;", "proxy_ssl_name " + nginxServerName + ";", "proxy_ssl_protocols TLSv1.3;",
			"proxy_set_header Connection \"\";", "access_log off;", "pid /d/client.pid;",
		}, []string{"ssl_verify_client"}},
		{"server", server, []string{
			"listen 127.0.0.32:2000 ssl;", "ssl_certificate /d/s.pem;", "ssl_client_certificate /d/root.pem;",
			"ssl_verify_client on;", "ssl_protocols TLSv1.3;", "proxy_pass http://next_hop;", "server 127.0.0.32:3000;",
		}, []string{"proxy_ssl_verify"}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(tt.conf, w) {
				t.Errorf("%s side lacks %q:\n%s", tt.side, w, tt.conf)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(tt.conf, n) {
				t.Errorf("%s side has %q", tt.side, n)
			}
		}
		if strings.Count(tt.conf, "{") != strings.Count(tt.conf, "}") {
			t.Errorf("%s side: unbalanced braces:\n%s", tt.side, tt.conf)
		}
	}
}
