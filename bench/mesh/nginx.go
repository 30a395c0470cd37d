package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// nginxSide is the parameters of one nginx instance of configuration (d),
// (e) or (f).
type nginxSide struct {
	// cfg says what the instance proxies: HTTP with mutual TLS between
	// the sides (d), TCP with mutual TLS (e) or TCP in plaintext (f).
	cfg config
	// name is "client" or "server"; it prefixes the instance's files.
	name string
	// listen is the address the instance accepts on; upstream the one it
	// forwards to: the server side for the client, the application for
	// the server.
	listen, upstream netip.AddrPort
	pki              nginxPKI
	// streamModule is the path of the stream module's shared object,
	// loaded by (e) and (f): Debian builds the module as a dynamic one.
	streamModule string
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
// proxies do the same cryptography; ECDSA P-256 keys on both. (d) proxies
// HTTP (nginxHTTP), (e) and (f) TCP (nginxStream).
func nginxConf(side nginxSide, dir string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# nginx %s side of the Rampart mesh benchmark, configuration (%s).", side.name, side.cfg)
	if side.cfg.stream() {
		// load_module belongs before any other directive's use of the
		// module, in the main context.
		p("load_module %s;", side.streamModule)
	}
	p("worker_processes 1;")
	p("pid %s;", filepath.Join(dir, side.name+".pid"))
	p("error_log %s error;", filepath.Join(dir, side.name+"-error.log"))
	p("events {")
	p("    worker_connections 4096;")
	p("}")
	if side.cfg.stream() {
		nginxStream(p, side)
	} else {
		nginxHTTP(p, side, dir)
	}
	return b.String()
}

// nginxHTTP renders the http block of (d).
//
// The client side listens in plaintext, as the captured outbound socket,
// and proxies over HTTPS with its client certificate, verifying the
// server's certificate against the Rampart root and the name
// nginxServerName, on keep-alive upstream connections. The server side
// requires and verifies a client certificate (ssl_verify_client on) and
// proxies to the application on keep-alive connections.
func nginxHTTP(p func(string, ...any), side nginxSide, dir string) {
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
		nginxServerTLS(p, "        ", side.pki)
	}
	p("        location / {")
	p("            proxy_http_version 1.1;")
	p("            proxy_set_header Connection \"\";")
	p("            proxy_set_header Host $host;")
	if side.name == clientName {
		p("            proxy_pass https://next_hop;")
		nginxClientTLS(p, "            ", side.pki)
	} else {
		p("            proxy_pass http://next_hop;")
	}
	p("        }")
	p("    }")
	p("}")
}

// nginxStream renders the stream block of (e) and (f): each side relays
// bytes between a downstream and an upstream TCP connection and parses
// nothing, as b's proxies do. The stream module has no upstream pool: each
// client connection gets its own connection to the next hop, opened (with
// its TLS handshake, in e) when the client connects, so during the
// warm-up; the load generator keeps its connections for a whole
// measurement.
//
// In (e) the client side listens in plaintext and connects to the server
// side in TLS with its client certificate, verifying the server's against
// the Rampart root and nginxServerName, with the settings of (d); the
// server side requires and verifies a client certificate and relays in
// plaintext to the application. In (f) no hop has TLS. proxy_timeout, the
// idle time before nginx closes a relayed connection, is (d)'s keep-alive
// timeout.
func nginxStream(p func(string, ...any), side nginxSide) {
	tls := side.cfg == cfgNginxL4
	p("stream {")
	p("    access_log off;")
	p("    server {")
	if side.name == serverName && tls {
		p("        listen %s ssl;", side.listen)
		nginxServerTLS(p, "        ", side.pki)
	} else {
		p("        listen %s;", side.listen)
	}
	p("        proxy_pass %s;", side.upstream)
	p("        proxy_timeout %s;", nginxKeepaliveTimeout)
	if side.name == clientName && tls {
		p("        proxy_ssl on;")
		nginxClientTLS(p, "        ", side.pki)
	}
	p("    }")
	p("}")
}

// nginxServerTLS renders the TLS settings of a server side that requires
// a client certificate under the Rampart root; the directives are the same
// in the http and the stream module.
func nginxServerTLS(p func(string, ...any), indent string, pki nginxPKI) {
	p(indent+"ssl_certificate %s;", pki.serverCert)
	p(indent+"ssl_certificate_key %s;", pki.serverKey)
	p(indent+"ssl_client_certificate %s;", pki.root)
	p(indent + "ssl_verify_client on;")
	p(indent + "ssl_verify_depth 2;")
	p(indent + "ssl_protocols TLSv1.3;")
	p(indent + "ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;")
}

// nginxClientTLS renders the TLS settings of a client side's upstream
// connections: its client certificate, and verification of the server
// side's certificate against the Rampart root and nginxServerName; the
// directives are the same in the http and the stream module.
func nginxClientTLS(p func(string, ...any), indent string, pki nginxPKI) {
	p(indent+"proxy_ssl_certificate %s;", pki.clientCert)
	p(indent+"proxy_ssl_certificate_key %s;", pki.clientKey)
	p(indent+"proxy_ssl_trusted_certificate %s;", pki.root)
	p(indent + "proxy_ssl_verify on;")
	p(indent + "proxy_ssl_verify_depth 2;")
	p(indent+"proxy_ssl_name %s;", nginxServerName)
	p(indent + "proxy_ssl_server_name on;")
	p(indent + "proxy_ssl_protocols TLSv1.3;")
	p(indent + "proxy_ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;")
	p(indent + "proxy_ssl_session_reuse on;")
}

// nginxVersion returns "nginx version: nginx/1.22.1" or an error saying
// how to install nginx.
func nginxVersion(bin string) (path, version string, err error) {
	path, err = exec.LookPath(bin)
	if err != nil {
		return "", "", fmt.Errorf("%w: install it (apt-get install -y nginx) or leave d, e and f out (-configs a,b,c)", errNoNginx)
	}
	out, err := exec.Command(path, "-v").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("%s -v: %w: %s", path, err, out)
	}
	return path, strings.TrimSpace(string(out)), nil
}

// errNoNginx is returned when configuration (d), (e) or (f) is asked for
// and nginx is not installed.
var errNoNginx = errors.New("nginx not found")

// nginxModulesDir is where Debian's nginx module packages put their
// shared objects.
const nginxModulesDir = "/usr/lib/nginx/modules"

// nginxStreamModule returns the path of the stream module under dir, or
// an error saying how to install it. Debian builds the stream module as a
// dynamic module, in its own package, which nginx does not depend on.
func nginxStreamModule(dir string) (string, error) {
	path := filepath.Join(dir, "ngx_stream_module.so")
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: no %s: install it (apt-get install -y libnginx-mod-stream) or leave e and f out (-configs a,b,c,d)", errNoStreamModule, path)
		}
		return "", fmt.Errorf("nginx stream module: %w", err)
	}
	return path, nil
}

// errNoStreamModule is returned when configuration (e) or (f) is asked for
// and nginx's stream module is not installed.
var errNoStreamModule = errors.New("nginx stream module not found")
