package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Recorder receives one Record per connection and one per HTTP request
// the proxy handles. Record is called synchronously on the connection's
// goroutine when it ends, so an implementation must be quick and must not
// block (hand records to a buffered channel, drop when full).
type Recorder interface {
	Record(Record)
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(Record)

// Record calls f.
func (f RecorderFunc) Record(r Record) { f(r) }

// RecordKind says whether a record describes a connection or a request.
type RecordKind string

const (
	RecordConnection RecordKind = "connection"
	RecordRequest    RecordKind = "request"
)

// Reporter says which side of a tunnel reports, as Istio's reporter label:
// the source workload's outbound side or the destination's inbound side.
// A connection between two workloads of the node is reported by both.
type Reporter string

const (
	ReporterSource      Reporter = "source"
	ReporterDestination Reporter = "destination"
)

// Transport is how a connection travelled.
type Transport string

const (
	// TransportHBONE is HTTP/2 CONNECT inside mutual TLS.
	TransportHBONE Transport = "hbone"
	// TransportPassthrough is outbound plain TCP to a destination outside
	// the mesh.
	TransportPassthrough Transport = "passthrough"
	// TransportPlaintext is inbound plain TCP captured on port 15006.
	TransportPlaintext Transport = "plaintext"
)

// Record is the telemetry of one connection or one HTTP request.
type Record struct {
	Kind      RecordKind
	Reporter  Reporter
	Transport Transport
	// SourceWorkload and DestinationWorkload are "namespace/name", empty
	// when unknown (outside the mesh).
	SourceWorkload      string
	DestinationWorkload string
	// SourcePrincipal and DestinationPrincipal are SPIFFE IDs: verified
	// from the peer's certificate on the side that has it, the local
	// workload's own on the other; empty without mutual TLS.
	SourcePrincipal      string
	DestinationPrincipal string
	// Source is the client's address, Destination the original
	// destination (application address and port).
	Source      netip.AddrPort
	Destination netip.AddrPort
	// Method, Path and Status describe a request; Status is also set on
	// the connection record of a tunnel refused by HTTP status.
	Method string
	Path   string
	Status int
	Start  time.Time
	// Duration is the connection's lifetime or the request's latency
	// until its response body ended.
	Duration time.Duration
	// BytesReceived counts bytes from the client towards the application
	// (the request direction) and BytesSent bytes back to the client (the
	// response direction), payload only, as Istio's tcp_received_bytes
	// and tcp_sent_bytes.
	BytesReceived int64
	BytesSent     int64
	// Allowed, Policy and Reason are the decision; Error says what failed
	// (a handshake, a dial) when the connection broke.
	Allowed bool
	Policy  string
	Reason  string
	Error   string

	// forwarded is set when the connection reached its destination, so
	// it was counted as opened and is now counted as closed.
	forwarded bool
}

// metrics are the proxy's Prometheus metrics, named and labelled in the
// spirit of Istio's standard metrics.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	sent          *prometheus.CounterVec
	received      *prometheus.CounterVec
	opened        *prometheus.CounterVec
	closed        *prometheus.CounterVec
	connsDenied   *prometheus.CounterVec
	handshakeFail *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	conn := []string{"reporter", "source_workload", "destination_workload"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_requests_total",
			Help: "HTTP requests seen by the proxy's inbound side (L7 ports only), by response code.",
		}, []string{"source_workload", "destination_workload", "response_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_request_duration_seconds",
			Help:    "Latency of HTTP requests seen by the proxy's inbound side, until the response ended.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"source_workload", "destination_workload", "response_code"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_tcp_sent_bytes_total",
			Help: "Bytes sent back to the client (response direction), by reporter.",
		}, conn),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_tcp_received_bytes_total",
			Help: "Bytes received from the client (request direction), by reporter.",
		}, conn),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_tcp_connections_opened_total",
			Help: "Connections the proxy forwarded to their destination.",
		}, conn),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_tcp_connections_closed_total",
			Help: "Connections the proxy forwarded that have ended.",
		}, conn),
		connsDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_tcp_connections_denied_total",
			Help: "Connections refused before reaching their destination (policy, peer authentication or an error).",
		}, conn),
		handshakeFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_tls_handshake_failures_total",
			Help: "Failed HBONE TLS handshakes, by reporter and local workload.",
		}, []string{"reporter", "workload"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.sent, m.received, m.opened, m.closed, m.connsDenied, m.handshakeFail} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register metrics: %w (one Proxy per registry)", err)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// countOpened counts a connection that reached its destination; its
// record must then carry forwarded.
func (p *Proxy) countOpened(rep Reporter, src, dst string) {
	p.metrics.opened.WithLabelValues(string(rep), label(src), label(dst)).Inc()
}

// label returns the metric label value of a workload key.
func label(key string) string {
	if key == "" {
		return "unknown"
	}
	return key
}

// requestMetrics holds a connection's request metrics for the status code
// of its last request: the requests of one connection share their
// workloads and mostly their status, so the label lookups (hashing three
// strings, twice) are done once per connection and code, not per request.
type requestMetrics struct {
	code  int
	count prometheus.Counter
	dur   prometheus.Observer
}

// emitRequest is emit for a request record, with m caching the metrics of
// its connection.
func (p *Proxy) emitRequest(r Record, m *requestMetrics) {
	if m.count == nil || m.code != r.Status {
		src, dst, code := label(r.SourceWorkload), label(r.DestinationWorkload), strconv.Itoa(r.Status)
		*m = requestMetrics{
			code:  r.Status,
			count: p.metrics.requests.WithLabelValues(src, dst, code),
			dur:   p.metrics.duration.WithLabelValues(src, dst, code),
		}
	}
	m.count.Inc()
	m.dur.Observe(r.Duration.Seconds())
	p.record(r)
}

// emit counts r in the metrics and hands it to the recorder. A panicking
// recorder loses the record, not the connection.
func (p *Proxy) emit(r Record) {
	src, dst := label(r.SourceWorkload), label(r.DestinationWorkload)
	switch r.Kind {
	case RecordRequest:
		var m requestMetrics
		p.emitRequest(r, &m)
		return
	case RecordConnection:
		rep := string(r.Reporter)
		switch {
		case r.Reason == reasonHandshake:
			local := dst
			if r.Reporter == ReporterSource {
				local = src
			}
			p.metrics.handshakeFail.WithLabelValues(rep, local).Inc()
			p.metrics.connsDenied.WithLabelValues(rep, src, dst).Inc()
		case r.forwarded:
			p.metrics.closed.WithLabelValues(rep, src, dst).Inc()
		default:
			p.metrics.connsDenied.WithLabelValues(rep, src, dst).Inc()
		}
		p.metrics.sent.WithLabelValues(rep, src, dst).Add(float64(r.BytesSent))
		p.metrics.received.WithLabelValues(rep, src, dst).Add(float64(r.BytesReceived))
	}
	p.record(r)
}

// record hands r to the recorder. A panicking recorder loses the record,
// not the connection.
func (p *Proxy) record(r Record) {
	if p.cfg.Recorder == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("recorder panicked; record lost", slog.Any("panic", v))
		}
	}()
	p.cfg.Recorder.Record(r)
}

// reasonHandshake is the Reason of a connection whose TLS handshake
// failed.
const reasonHandshake = "tls handshake failed"
