package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"
)

// The proxy's well-known ports, the same as Istio's so that tooling and
// habits carry over. A workload's own applications cannot use them.
const (
	// OutboundPort receives the workload's captured outbound TCP.
	OutboundPort uint16 = 15001
	// InboundPlaintextPort receives captured inbound TCP that did not come
	// through a tunnel.
	InboundPlaintextPort uint16 = 15006
	// HBONEPort receives tunnels (mutual TLS, HTTP/2 CONNECT) from other
	// workloads' proxies.
	HBONEPort uint16 = 15008
)

// SocketMark is the SO_MARK of every socket the proxy connects from inside
// a workload's network namespace, and MarkMask the bits the capture rules
// compare: packets with mark&MarkMask == SocketMark are not redirected, so
// the proxy's own connections leave the workload instead of looping back
// into the proxy. It is Istio's value (1337), which its tools recognise;
// the mark never leaves the namespace (the kernel clears it when a packet
// crosses into another one), so it cannot clash with the datapath's marks.
const (
	SocketMark uint32 = 0x539
	MarkMask   uint32 = 0xfff
)

// The application sees the client's address as its peer, as with
// ztunnel's in-pod mode: the proxy connects to it from that address
// (IP_TRANSPARENT) with TransparentMark on the socket. The capture table
// gives the connection that mark in conntrack and the application's
// answers the same packet mark, and a policy rule sends packets with it
// to TransparentTable, whose one route delivers everything locally, so the
// answers, addressed to the client, reach the proxy's socket instead of
// leaving the namespace. The mark differs from SocketMark because the
// proxy's connections to other workloads must leave it.
const (
	TransparentMark  uint32 = 0x53a
	TransparentTable int    = 0x53a
	// transparentRulePriority comes before the main table (32766), as
	// Istio's in-pod rule does.
	transparentRulePriority int = 32764
)

// Errors of the proxy, for errors.Is.
var (
	// ErrNotSupported is returned on operating systems without network
	// namespaces and nftables.
	ErrNotSupported = errors.New("the mesh proxy is not supported on this OS")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("proxy closed")
	// ErrInvalidWorkload is returned by AddWorkload for a malformed
	// Workload.
	ErrInvalidWorkload = errors.New("invalid workload")
	// ErrUnknownWorkload is returned by Dial for a workload not added.
	ErrUnknownWorkload = errors.New("unknown workload")
	// ErrInsecureTLS is returned when a Certificates implementation hands
	// out a config that would not authenticate the peer.
	ErrInsecureTLS = errors.New("insecure tls config")
)

// Ports are the proxy's listening ports. The zero value means the
// well-known ports; tests and benchmarks that run several proxies in one
// network namespace choose others.
type Ports struct {
	Outbound         uint16
	InboundPlaintext uint16
	// HBONE is both the port the proxy listens on for tunnels and the
	// port it dials at destinations, so every proxy of a mesh must agree.
	HBONE uint16
}

func (p Ports) withDefaults() Ports {
	if p.Outbound == 0 {
		p.Outbound = OutboundPort
	}
	if p.InboundPlaintext == 0 {
		p.InboundPlaintext = InboundPlaintextPort
	}
	if p.HBONE == 0 {
		p.HBONE = HBONEPort
	}
	return p
}

func (p Ports) has(port uint16) bool {
	return port == p.Outbound || port == p.InboundPlaintext || port == p.HBONE
}

// Config configures a Proxy. Certificates, Resolver and Authorizer are
// required; everything else has a default.
type Config struct {
	Certificates Certificates
	Resolver     Resolver
	Authorizer   Authorizer
	// Recorder receives connection and request records; nil drops them.
	Recorder Recorder
	// Registerer receives the proxy's metrics; nil keeps them
	// unregistered. One Proxy per registry.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// TrustDomain of the workloads' SPIFFE IDs, "cluster.local" by
	// default.
	TrustDomain string
	Ports       Ports
	// HandshakeTimeout bounds a tunnel's TLS handshake and the wait for
	// the answer to its CONNECT; 10 s by default.
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds TCP connects to destinations and
	// applications; 10 s by default.
	ConnectTimeout time.Duration
	// IdleTimeout closes HBONE connections without streams and idle
	// keep-alive connections to applications; 5 min by default.
	IdleTimeout time.Duration
}

// Proxy is the node proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	authz   guardedAuthorizer
	pool    *pool

	opMu      sync.Mutex // serializes AddWorkload, RemoveWorkload and Close
	mu        sync.RWMutex
	workloads map[string]*workloadState
	closed    bool
}

// New returns a proxy with no workloads.
func New(cfg Config) (*Proxy, error) {
	if cfg.Certificates == nil || cfg.Resolver == nil || cfg.Authorizer == nil {
		return nil, errors.New("proxy config: Certificates, Resolver and Authorizer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "cluster.local"
	}
	cfg.Ports = cfg.Ports.withDefaults()
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		cfg:       cfg,
		log:       cfg.Logger.With(slog.String("component", "proxy")),
		metrics:   m,
		authz:     guardedAuthorizer{cfg.Authorizer},
		workloads: map[string]*workloadState{},
	}
	p.pool = newPool(p)
	return p, nil
}

// workloadState is everything the proxy holds for one workload: its
// namespace handle, listeners, live connections and goroutines.
type workloadState struct {
	w  Workload
	ns netns.NsHandle // netns.None() for the proxy's own namespace
	// capture is set when the nftables table was installed.
	capture   bool
	listeners []net.Listener
	ctx       context.Context
	cancel    context.CancelFunc
	// upstream carries prior-knowledge HTTP/2 (h2c, what gRPC speaks)
	// to the workload's applications.
	upstream *http.Transport

	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	closed bool
	wg     sync.WaitGroup
}

// own reports whether the workload lives in the proxy's own namespace.
func (ws *workloadState) own() bool { return ws.ns == netns.None() }

// track registers c so that removing the workload closes it. It returns
// false, having closed c, when the workload is already being removed.
func (ws *workloadState) track(c io.Closer) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		c.Close()
		return false
	}
	ws.conns[c] = struct{}{}
	return true
}

func (ws *workloadState) untrack(c io.Closer) {
	ws.mu.Lock()
	delete(ws.conns, c)
	ws.mu.Unlock()
}

// goroutine runs fn on a goroutine counted in the workload's WaitGroup,
// unless the workload is being removed.
func (ws *workloadState) goroutine(fn func()) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return false
	}
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		fn()
	}()
	return true
}

// AddWorkload starts serving w: it opens the listeners inside w's network
// namespace, then installs the capture rules, so no redirected connection
// ever meets a closed port. Adding an equal workload again does nothing;
// adding a changed one (same key) replaces it.
func (p *Proxy) AddWorkload(w Workload) error {
	w.IPs = slices.Clone(w.IPs)
	for i, ip := range w.IPs {
		w.IPs[i] = ip.Unmap()
	}
	if err := w.validate(); err != nil {
		return err
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.RLock()
	old, closed := p.workloads[w.Key()], p.closed
	p.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if old != nil {
		if old.w.equal(w) {
			return nil
		}
		p.removeLocked(old)
	}
	ws, err := p.start(w)
	if err != nil {
		return fmt.Errorf("add workload %s: %w", w.Key(), err)
	}
	p.mu.Lock()
	p.workloads[w.Key()] = ws
	p.mu.Unlock()
	for i, l := range ws.listeners {
		ws.goroutine(func() { p.serve(ws, l, i) })
	}
	p.log.Info("workload added", slog.String("workload", w.Key()), slog.String("netns", w.NetnsPath), slog.Bool("capture", ws.capture))
	return nil
}

// start opens the namespace, the listeners and the capture rules of w,
// undoing what it did if a step fails.
func (p *Proxy) start(w Workload) (ws *workloadState, err error) {
	ws = &workloadState{w: w, ns: netns.None(), conns: map[io.Closer]struct{}{}}
	defer func() {
		if err != nil {
			for _, l := range ws.listeners {
				l.Close()
			}
			if ws.capture {
				removeCapture(ws.ns)
			}
			if !ws.own() {
				ws.ns.Close()
			}
		}
	}()
	if w.NetnsPath != "" {
		if ws.ns, err = openNetns(w.NetnsPath); err != nil {
			return nil, err
		}
	}
	if ws.listeners, err = listen(ws.ns, w, p.cfg.Ports); err != nil {
		return ws, err
	}
	if !ws.own() {
		if err = installCapture(ws.ns, p.cfg.Ports); err != nil {
			return ws, err
		}
		ws.capture = true
	}
	ws.ctx, ws.cancel = context.WithCancel(context.Background())
	ws.upstream = p.newUpstream(ws)
	return ws, nil
}

// RemoveWorkload stops serving the workload namespace/name: it removes the
// capture rules first (new connections then go straight to their
// destinations, as without the mesh), then closes the listeners and every
// connection of the workload, and waits for its goroutines. Removing an
// unknown workload does nothing.
func (p *Proxy) RemoveWorkload(namespace, name string) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.RLock()
	ws := p.workloads[namespace+"/"+name]
	p.mu.RUnlock()
	if ws == nil {
		return nil
	}
	return p.removeLocked(ws)
}

func (p *Proxy) removeLocked(ws *workloadState) error {
	p.mu.Lock()
	delete(p.workloads, ws.w.Key())
	p.mu.Unlock()
	var err error
	if ws.capture {
		if err = removeCapture(ws.ns); err != nil {
			err = fmt.Errorf("remove workload %s: %w", ws.w.Key(), err)
		}
	}
	ws.mu.Lock()
	ws.closed = true
	conns := ws.conns
	ws.conns = nil
	ws.mu.Unlock()
	ws.cancel()
	for _, l := range ws.listeners {
		l.Close()
	}
	for c := range conns {
		c.Close()
	}
	p.pool.closeSource(ws.w.Key())
	ws.wg.Wait()
	// A handler that was dialing when the pool was emptied cannot have
	// added a live connection (its context was cancelled first), but it
	// may have left an empty entry.
	p.pool.closeSource(ws.w.Key())
	ws.upstream.CloseIdleConnections()
	if !ws.own() {
		ws.ns.Close()
	}
	p.log.Info("workload removed", slog.String("workload", ws.w.Key()))
	return err
}

// Workloads returns the workloads being served, in no particular order.
func (p *Proxy) Workloads() []Workload {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]Workload, 0, len(p.workloads))
	for _, ws := range p.workloads {
		out = append(out, ws.w)
	}
	return out
}

// Close removes every workload and refuses new ones. It returns the
// errors of the removals.
func (p *Proxy) Close() error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	p.closed = true
	all := make([]*workloadState, 0, len(p.workloads))
	for _, ws := range p.workloads {
		all = append(all, ws)
	}
	p.mu.Unlock()
	var errs []error
	for _, ws := range all {
		errs = append(errs, p.removeLocked(ws))
	}
	p.pool.closeAll()
	return errors.Join(errs...)
}

// workload returns the state of a served workload.
func (p *Proxy) workload(key string) *workloadState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.workloads[key]
}

// serve accepts on the i-th listener of ws until it is closed. The
// listener's role follows from its port.
func (p *Proxy) serve(ws *workloadState, l net.Listener, i int) {
	port := uint16(0)
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil {
		port = ap.Port()
	}
	var handle func(*workloadState, net.Conn)
	switch port {
	case p.cfg.Ports.Outbound:
		handle = p.handleOutbound
	case p.cfg.Ports.InboundPlaintext:
		handle = p.handlePlaintext
	case p.cfg.Ports.HBONE:
		handle = p.handleHBONE
	default:
		p.log.Error("listener on an unexpected port", slog.String("workload", ws.w.Key()), slog.String("addr", l.Addr().String()))
		return
	}
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ws.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: back off as
			// net/http does instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("accept", slog.String("workload", ws.w.Key()), slog.Int("listener", i), slog.Any("error", err))
			time.Sleep(delay)
			continue
		}
		delay = 0
		c = raw(c)
		if !ws.track(c) {
			return
		}
		if !ws.goroutine(func() {
			defer ws.untrack(c)
			defer c.Close()
			handle(ws, c)
		}) {
			c.Close()
			return
		}
	}
}
