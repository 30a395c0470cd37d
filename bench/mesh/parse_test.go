package main

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
	const module = "/usr/lib/nginx/modules/ngx_stream_module.so"
	conf := func(cfg config, name string, listen, upstream string) string {
		return nginxConf(nginxSide{
			cfg: cfg, name: name, listen: netip.MustParseAddrPort(listen), upstream: netip.MustParseAddrPort(upstream),
			pki: pki, streamModule: module,
		}, "/d")
	}
	// The TLS settings every side with TLS shares, so that (d) and (e) do
	// the same cryptography and verification.
	clientTLS := []string{
		"proxy_ssl_certificate /d/c.pem;", "proxy_ssl_certificate_key /d/c-key.pem;", "proxy_ssl_trusted_certificate /d/root.pem;",
		"proxy_ssl_verify on;", "proxy_ssl_verify_depth 2;", "proxy_ssl_name " + nginxServerName + ";", "proxy_ssl_server_name on;",
		"proxy_ssl_protocols TLSv1.3;", "proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
	}
	serverTLS := []string{
		"ssl_certificate /d/s.pem;", "ssl_certificate_key /d/s-key.pem;", "ssl_client_certificate /d/root.pem;",
		"ssl_verify_client on;", "ssl_verify_depth 2;", "ssl_protocols TLSv1.3;", "ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;",
	}
	for _, tt := range []struct {
		name string
		conf string
		want []string
		not  []string
	}{
		{"d client", conf(cfgNginx, clientName, "127.0.0.31:1000", "127.0.0.32:2000"), append([]string{
			"worker_processes 1;", "listen 127.0.0.31:1000;", "server 127.0.0.32:2000;", "keepalive 64;",
			"proxy_pass https://next_hop;", "proxy_set_header Connection \"\";", "access_log off;", "pid /d/client.pid;",
		}, clientTLS...), []string{"ssl_verify_client", "load_module", "stream {"}},
		{"d server", conf(cfgNginx, serverName, "127.0.0.32:2000", "127.0.0.32:3000"), append([]string{
			"listen 127.0.0.32:2000 ssl;", "proxy_pass http://next_hop;", "server 127.0.0.32:3000;",
		}, serverTLS...), []string{"proxy_ssl_verify", "load_module", "stream {"}},
		{"e client", conf(cfgNginxL4, clientName, "127.0.0.41:1000", "127.0.0.42:2000"), append([]string{
			"load_module " + module + ";", "worker_processes 1;", "stream {", "listen 127.0.0.41:1000;",
			"proxy_pass 127.0.0.42:2000;", "proxy_ssl on;", "access_log off;", "pid /d/client.pid;",
		}, clientTLS...), []string{"ssl_verify_client", "http {", "keepalive 64;", "location"}},
		{"e server", conf(cfgNginxL4, serverName, "127.0.0.42:2000", "127.0.0.42:3000"), append([]string{
			"load_module " + module + ";", "stream {", "listen 127.0.0.42:2000 ssl;", "proxy_pass 127.0.0.42:3000;",
		}, serverTLS...), []string{"proxy_ssl", "http {"}},
		{"f client", conf(cfgNginxTCP, clientName, "127.0.0.51:1000", "127.0.0.52:2000"), []string{
			"load_module " + module + ";", "worker_processes 1;", "stream {", "listen 127.0.0.51:1000;", "proxy_pass 127.0.0.52:2000;",
		}, []string{"ssl", "http {"}},
		{"f server", conf(cfgNginxTCP, serverName, "127.0.0.52:2000", "127.0.0.52:3000"), []string{
			"load_module " + module + ";", "stream {", "listen 127.0.0.52:2000;", "proxy_pass 127.0.0.52:3000;",
		}, []string{"ssl", "http {"}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(tt.conf, w) {
				t.Errorf("%s lacks %q:\n%s", tt.name, w, tt.conf)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(tt.conf, n) {
				t.Errorf("%s has %q:\n%s", tt.name, n, tt.conf)
			}
		}
		if strings.Count(tt.conf, "{") != strings.Count(tt.conf, "}") {
			t.Errorf("%s: unbalanced braces:\n%s", tt.name, tt.conf)
		}
		// load_module is only valid before the blocks.
		if i := strings.Index(tt.conf, "load_module"); i >= 0 && i > strings.Index(tt.conf, "events {") {
			t.Errorf("%s: load_module after the events block:\n%s", tt.name, tt.conf)
		}
	}
}

func TestNginxStreamModule(t *testing.T) {
	dir := t.TempDir()
	if _, err := nginxStreamModule(dir); !errors.Is(err, errNoStreamModule) || !strings.Contains(err.Error(), "apt-get install -y libnginx-mod-stream") {
		t.Errorf("no module: err = %v, want errNoStreamModule saying how to install it", err)
	}
	so := filepath.Join(dir, "ngx_stream_module.so")
	if err := os.WriteFile(so, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := nginxStreamModule(dir); err != nil || got != so {
		t.Errorf("nginxStreamModule = %q, %v; want %q", got, err, so)
	}
}

func TestProxyEnv(t *testing.T) {
	tests := []struct {
		procs int
		want  []string
	}{
		{0, nil},
		{1, []string{"GOMAXPROCS=1"}},
		{4, []string{"GOMAXPROCS=4"}},
	}
	for _, tt := range tests {
		if got := proxyEnv(tt.procs); !slices.Equal(got, tt.want) {
			t.Errorf("proxyEnv(%d) = %q, want %q", tt.procs, got, tt.want)
		}
	}
}
