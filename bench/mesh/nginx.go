package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
)

// nginxSide is the parameters of one nginx instance of configuration (d).
type nginxSide struct {
	// name is "client" or "server"; it prefixes the instance's files.
	name string
	// listen is the address the instance accepts on; upstream the one it
	// forwards to: the server side for the client, the application for
	// the server.
	listen, upstream netip.AddrPort
	pki              nginxPKI
}

// nginxKeepalive is the requests per connection and the idle time before
// nginx closes a keep-alive connection, downstream and upstream. nginx's
// defaults (1,000 requests, 60 s) would reconnect and redo the TLS
// handshake during a measurement, which neither Rampart nor the
// application do.
const (
	nginxKeepaliveRequests = 1_000_000
	nginxKeepaliveTimeout  = "600s"
)

// nginxConf renders the configuration of one side; dir is its prefix
// (nginx -p), which holds the pid file, the error log and the temporary
// directories.
//
// One worker process (worker_processes 1) per instance, so two for the
// pair: as many as a 2-core machine has cores. No access log (Rampart
// writes no log per request either). TLS 1.3 only with
// TLS_AES_128_GCM_SHA256, the suite Go chooses with AES hardware, so both
// proxies do the same cryptography; ECDSA P-256 keys on both.
//
// The client side listens in plaintext, as the captured outbound socket,
// and proxies over HTTPS with its client certificate, verifying the
// server's certificate against the Rampart root and the name
// nginxServerName, on keep-alive upstream connections. The server side
// requires and verifies a client certificate (ssl_verify_client on) and
// proxies to the application on keep-alive connections.
func nginxConf(side nginxSide, dir string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# nginx %s side of the Rampart mesh benchmark, configuration (d).", side.name)
	p("worker_processes 1;")
	p("pid %s;", filepath.Join(dir, side.name+".pid"))
	p("error_log %s error;", filepath.Join(dir, side.name+"-error.log"))
	p("events {")
	p("    worker_connections 4096;")
	p("}")
	p("http {")
	p("    access_log off;")
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p("    %s_temp_path %s;", t, filepath.Join(dir, side.name+"-"+t))
	}
	p("    keepalive_requests %d;", nginxKeepaliveRequests)
	p("    keepalive_timeout %s;", nginxKeepaliveTimeout)
	// Responses larger than the buffers pass through instead of going to
	// a temporary file, which the unprivileged worker could not write.
	p("    proxy_max_temp_file_size 0;")
	p("    upstream next_hop {")
	p("        server %s;", side.upstream)
	p("        keepalive 64;")
	p("        keepalive_requests %d;", nginxKeepaliveRequests)
	p("        keepalive_timeout %s;", nginxKeepaliveTimeout)
	p("    }")
	p("    server {")
	if side.name == clientName {
		p("        listen %s;", side.listen)
	} else {
		p("        listen %s ssl;", side.listen)
		p("        ssl_certificate %s;", side.pki.serverCert)
		p("        ssl_certificate_key %s;", side.pki.serverKey)
		p("        ssl_client_certificate %s;", side.pki.root)
		p("        ssl_verify_client on;")
		p("        ssl_verify_depth 2;")
		p("        ssl_protocols TLSv1.3;")
		p("        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;")
	}
	p("        location / {")
	p("            proxy_http_version 1.1;")
	p("            proxy_set_header Connection \"\";")
	p("            proxy_set_header Host $host;")
	if side.name == clientName {
		p("            proxy_pass https://next_hop;")
		p("            proxy_ssl_certificate %s;", side.pki.clientCert)
		p("            proxy_ssl_certificate_key %s;", side.pki.clientKey)
		p("            proxy_ssl_trusted_certificate %s;", side.pki.root)
		p("            proxy_ssl_verify on;")
		p("            proxy_ssl_verify_depth 2;")
		p("            proxy_ssl_name %s;", nginxServerName)
		p("            proxy_ssl_server_name on;")
		p("            proxy_ssl_protocols TLSv1.3;")
		p("            proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;")
		p("            proxy_ssl_session_reuse on;")
	} else {
		p("            proxy_pass http://next_hop;")
	}
	p("        }")
	p("    }")
	p("}")
	return b.String()
}

// nginxVersion returns "nginx version: nginx/1.22.1" or an error saying
// how to install nginx.
func nginxVersion(bin string) (path, version string, err error) {
	path, err = exec.LookPath(bin)
	if err != nil {
		return "", "", fmt.Errorf("%w: install it (apt-get install -y nginx) or leave d out (-configs a,b,c)", errNoNginx)
	}
	out, err := exec.Command(path, "-v").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("%s -v: %w: %s", path, err, out)
	}
	return path, strings.TrimSpace(string(out)), nil
}

// errNoNginx is returned when configuration (d) is asked for and nginx is
// not installed.
var errNoNginx = errors.New("nginx not found")
