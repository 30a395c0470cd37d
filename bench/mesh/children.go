package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartsec/rampart/bench/internal/benchcmd"
	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/proxy"
)

// The hidden subcommands the benchmark re-executes itself with.
const (
	appCmd   = "__app"
	proxyCmd = "__proxy"
)

// childMain runs a hidden subcommand and returns its exit code, or -1 if
// args name none.
func childMain(args []string) int {
	if len(args) == 0 {
		return -1
	}
	switch args[0] {
	case appCmd:
		return exitCode(appCmd, appMain(args[1:]))
	case proxyCmd:
		return exitCode(proxyCmd, proxyMain(args[1:]))
	}
	return -1
}

func exitCode(name string, err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// ---- the application ----

// appMain serves the application: every request is answered 200 with a
// body of -body bytes, on every address of -listen, until stdin closes.
func appMain(args []string) error {
	fs := flag.NewFlagSet(appCmd, flag.ContinueOnError)
	listen := fs.String("listen", "", "comma-separated addresses to serve on")
	size := fs.Int("body", 1024, "response body size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 0 || *size > maxBody {
		return fmt.Errorf("-body %d out of range [0, %d]", *size, maxBody)
	}
	body := bytes.Repeat([]byte("x"), *size)
	length := strconv.Itoa(len(body))
	var served atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served.Add(1)
			io.Copy(io.Discard, r.Body)
			h := w.Header()
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", length)
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
	}
	for _, a := range benchcmd.SplitList(*listen) {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		go srv.Serve(l)
	}
	ctl := newCtlChild(os.Stdin, os.Stdout, func() childStats { return childStats{Requests: served.Load()} })
	if err := ctl.send(ctlMsg{Op: opReady}); err != nil {
		return err
	}
	<-ctl.done
	return nil
}

// ---- the proxy ----

// proxyMain runs one node's Rampart proxy with one workload in its own
// network namespace (no capture): the client's or the server's. The
// client side also plays the workload's captured outbound socket: a TCP
// listener on -listen whose connections it hands to Proxy.Forward for the
// application on the server's address: the code path of the proxy's
// outbound port, short of reading the original destination.
func proxyMain(args []string) error {
	fs := flag.NewFlagSet(proxyCmd, flag.ContinueOnError)
	role := fs.String("role", "", "client or server")
	policy := fs.String("policy", policyNone, "authorization policies of the server: none or rules")
	hbone := fs.Uint("hbone", 0, "HBONE port of both proxies")
	clientIP := fs.String("client", "", "the client workload's address")
	serverIP := fs.String("server", "", "the server workload's address")
	listen := fs.String("listen", "", "client: address of the captured-outbound stand-in")
	appPort := fs.Uint("app", 0, "client: the application's port at the server's address")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the whole life of the proxy to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *hbone == 0 || *hbone > 65535 {
		return fmt.Errorf("-hbone %d is not a port", *hbone)
	}
	cip, err := netip.ParseAddr(*clientIP)
	if err != nil {
		return fmt.Errorf("-client: %w", err)
	}
	sip, err := netip.ParseAddr(*serverIP)
	if err != nil {
		return fmt.Errorf("-server: %w", err)
	}
	client := proxy.Workload{Namespace: benchNamespace, Name: clientName, ServiceAccount: clientName, IPs: []netip.Addr{cip}}
	server := proxy.Workload{Namespace: benchNamespace, Name: serverName, ServiceAccount: serverName, IPs: []netip.Addr{sip}}
	var local proxy.Workload
	switch *role {
	case clientName:
		local = client
		if *appPort == 0 || *appPort > 65535 {
			return fmt.Errorf("-app %d is not a port", *appPort)
		}
	case serverName:
		local = server
	default:
		return fmt.Errorf("-role %q: want client or server", *role)
	}

	rec := newCountingRecorder()
	ctl := newCtlChild(os.Stdin, os.Stdout, func() childStats {
		s := rec.stats()
		s.GOMAXPROCS = runtime.GOMAXPROCS(0)
		return s
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The node's own binding of certificates and policy to the proxy
	// (internal/meshnode), so that the benchmark measures what a node
	// runs. The CA signs over this process's stdin and stdout.
	certs, err := meshnode.NewCertificates(ctl, ca.DefaultTrustDomain, log)
	if err != nil {
		return err
	}
	defer certs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = certs.Acquire(ctx, local.Namespace, local.ServiceAccount)
	cancel()
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	engine, err := newEngine(*policy)
	if err != nil {
		return err
	}
	p, err := proxy.New(proxy.Config{
		Certificates: certs,
		Resolver:     staticResolver{client, server},
		Authorizer:   newAuthorizer(engine, local),
		Recorder:     rec,
		// Metrics are kept as an agent keeps them, for the same cost per
		// request; nobody scrapes them.
		Registerer: prometheus.NewRegistry(),
		Logger:     log,
		Ports:      proxy.Ports{HBONE: uint16(*hbone)},
	})
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.AddWorkload(local); err != nil {
		return err
	}
	if local.Name == clientName {
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		defer l.Close()
		dst := netip.AddrPortFrom(sip, uint16(*appPort))
		go forward(p, l, local, dst, log)
	}
	if err := ctl.send(ctlMsg{Op: opReady}); err != nil {
		return err
	}
	<-ctl.done
	return nil
}

// staticResolver knows the benchmark's two workloads, both in the mesh.
type staticResolver []proxy.Workload

func (r staticResolver) Resolve(ip netip.Addr) (proxy.Workload, bool) {
	for _, w := range r {
		for _, a := range w.IPs {
			if a == ip.Unmap() {
				return w, true
			}
		}
	}
	return proxy.Workload{}, false
}

// forward accepts connections on l and sends each through the proxy to dst
// as workload w, until l is closed.
func forward(p *proxy.Proxy, l net.Listener, w proxy.Workload, dst netip.AddrPort, log *slog.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("accept", slog.Any("error", err))
			}
			return
		}
		go func() {
			defer c.Close()
			if err := p.Forward(w.Namespace, w.Name, c, dst); err != nil {
				log.Warn("forward", slog.Any("error", err))
			}
		}()
	}
}

// countingRecorder counts the proxy's records, so that the benchmark can
// check that its requests went through the proxy and which policy allowed
// them. It takes a lock per record, as an agent's flow log would.
type countingRecorder struct {
	mu sync.Mutex
	s  childStats
}

func newCountingRecorder() *countingRecorder {
	return &countingRecorder{s: childStats{ByPolicy: map[string]int64{}}}
}

func (r *countingRecorder) Record(rec proxy.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch rec.Kind {
	case proxy.RecordConnection:
		r.s.Connections++
	case proxy.RecordRequest:
		r.s.HTTPRequests++
		if rec.Allowed {
			r.s.ByPolicy[rec.Policy]++
		}
	}
	if rec.Kind == proxy.RecordRequest && !rec.Allowed {
		r.s.Denied++
	}
	if rec.Error != "" {
		r.s.Errors++
	}
}

func (r *countingRecorder) stats() childStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.ByPolicy = make(map[string]int64, len(r.s.ByPolicy))
	for k, v := range r.s.ByPolicy {
		s.ByPolicy[k] = v
	}
	return s
}
