package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/store"
)

// Version is the node's version, reported by status.
const Version = "0.1.0-dev"

// Config configures a node.
type Config struct {
	StateDir string
	Socket   string
	PodCIDR4 netip.Prefix
	PodCIDR6 netip.Prefix
	// EtcdEndpoints selects an external etcd cluster; empty runs an
	// embedded etcd under StateDir.
	EtcdEndpoints             []string
	EtcdCA, EtcdCert, EtcdKey string
	// MetricsAddr is where /metrics is served; it must be a loopback
	// address. Empty disables it.
	MetricsAddr string
	// DisableLocalRedirect routes traffic between the node's endpoints
	// through the host instead of delivering it from one endpoint's veth
	// into the other's namespace (datapath.Config.DisableLocalRedirect).
	DisableLocalRedirect bool
	// PathNormalization is the form the mesh proxy matches and forwards
	// request paths in (Istio's meshConfig.pathNormalization; zero:
	// BASE, Istio's default).
	PathNormalization mesh.PathNormalization
	Logger            *slog.Logger
}

// DefaultStateDir is the state directory of `rampart up`.
const DefaultStateDir = "/var/lib/rampart"

// defaultCleanupCIDR satisfies the endpoint manager's configuration when
// it is opened only to clean up.
var defaultCleanupCIDR = netip.MustParsePrefix("10.200.0.0/16")

// Instance returns the short name that prefixes this node's kernel objects
// (network namespaces, interfaces, bpffs pins). It is derived from the
// state directory so that two nodes with different state directories
// never share objects, and a restarted node finds its own.
func Instance(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "n" + hex.EncodeToString(sum[:])[:3]
}

// PinDir returns the bpffs directory of the node with this state dir.
func PinDir(stateDir string) string {
	return filepath.Join(datapath.BPFFSRoot, "rampart", Instance(stateDir))
}

// Node is a running node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	started time.Time

	store *store.Etcd
	alloc identity.Allocator
	dp    *datapath.Datapath
	eps   *endpoint.Manager

	mu    sync.Mutex // serialises reconciliation and endpoint changes
	state *desired   // objects from the store, as last reconciled
	ids   *RuleIDs
	flows *FlowLog
	mesh  *nodeMesh

	metrics *metrics
}

// Run runs a node until ctx is done. Stopping leaves enforcement in place.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.Socket == "" {
		cfg.Socket = api.DefaultSocket
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	lock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	n := &Node{cfg: cfg, log: cfg.Logger, started: time.Now(), ids: NewRuleIDs(), flows: NewFlowLog(8192), metrics: newMetrics()}
	defer n.close()
	if err := n.open(ctx); err != nil {
		return err
	}
	if err := n.restore(ctx); err != nil {
		return err
	}

	l, err := api.Listen(cfg.Socket)
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	srv := &http.Server{Handler: n.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(l) }()
	var msrv *http.Server
	if cfg.MetricsAddr != "" {
		ml, err := listenLoopback(cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{}))
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.Serve(ml) }()
		n.log.Info("metrics", "addr", ml.Addr().String())
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go n.watchStore(wctx)
	go n.readFlows(wctx)

	n.log.Info("node up", "socket", cfg.Socket, "stateDir", cfg.StateDir, "instance", Instance(cfg.StateDir),
		"podCIDR4", cfg.PodCIDR4, "podCIDR6", cfg.PodCIDR6)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdown, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	srv.Shutdown(shutdown)
	if msrv != nil {
		msrv.Shutdown(shutdown)
	}
	os.Remove(cfg.Socket)
	n.log.Info("node stopped; enforcement stays in place")
	return nil
}

func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		if host != "localhost" {
			return nil, fmt.Errorf("%s is not a loopback address", addr)
		}
	}
	return net.Listen("tcp", addr)
}

func (n *Node) open(ctx context.Context) error {
	var err error
	if len(n.cfg.EtcdEndpoints) > 0 {
		n.store, err = store.OpenRemote(ctx, store.RemoteConfig{
			Endpoints: n.cfg.EtcdEndpoints, CAFile: n.cfg.EtcdCA, CertFile: n.cfg.EtcdCert, KeyFile: n.cfg.EtcdKey,
		})
	} else {
		n.store, err = store.OpenEmbedded(ctx, store.EmbeddedConfig{Dir: filepath.Join(n.cfg.StateDir, "etcd")})
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	n.alloc = store.NewIdentityAllocator(n.store)
	n.dp, err = datapath.Open(datapath.Options{PinDir: PinDir(n.cfg.StateDir)})
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	if err := n.dp.SetConfig(datapath.Config{DisableLocalRedirect: n.cfg.DisableLocalRedirect}); err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	n.eps, err = endpoint.New(endpoint.Config{
		StateDir: filepath.Join(n.cfg.StateDir, "endpoints"),
		Instance: Instance(n.cfg.StateDir),
		PodCIDR4: n.cfg.PodCIDR4,
		PodCIDR6: n.cfg.PodCIDR6,
		Logger:   n.log,
	})
	if err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	return n.openMesh()
}

func (n *Node) close() {
	n.mesh.close()
	if n.eps != nil {
		n.eps.Close()
	}
	if n.dp != nil {
		n.dp.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

// metrics are the node's Prometheus metrics.
type metrics struct {
	reg       *prometheus.Registry
	flows     *prometheus.CounterVec
	endpoints prometheus.Gauge
	syncs     prometheus.Histogram
	syncErrs  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		flows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_flows_total", Help: "Flow events read from the datapath, by verdict.",
		}, []string{"verdict"}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_endpoints", Help: "Endpoints on this node."}),
		syncs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rampart_policy_sync_seconds", Help: "Time to resolve policy and program the datapath.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		syncErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_policy_sync_errors_total", Help: "Failed datapath syncs."}),
	}
	m.reg.MustRegister(m.flows, m.endpoints, m.syncs, m.syncErrs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
