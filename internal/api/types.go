package api

import (
	"encoding/json"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
)

// DefaultSocket is where the node listens and the CLI connects unless
// --socket or RAMPART_SOCKET say otherwise.
const DefaultSocket = "/run/rampart/rampart.sock"

// Input is one named manifest, sent as read so that errors name the
// user's own files and lines.
type Input struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// ApplyRequest applies (or, with Delete, deletes) every object of the
// inputs in one transaction.
type ApplyRequest struct {
	Inputs []Input `json:"inputs"`
	Delete bool    `json:"delete,omitempty"`
}

// ObjectRef names one stored object.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// DeleteRequest deletes the named objects in one transaction.
type DeleteRequest struct {
	Refs []ObjectRef `json:"refs"`
}

// ApplyResponse lists what changed, or every problem found (and then
// nothing changed).
type ApplyResponse struct {
	Applied []string     `json:"applied,omitempty"`
	Errors  []FieldError `json:"errors,omitempty"`
}

// FieldError is a problem in the input, located by file, line and field.
type FieldError struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Path string `json:"path,omitempty"`
	Msg  string `json:"message"`
}

// ObjectList holds stored objects as Kubernetes-shaped JSON.
type ObjectList struct {
	Items []json.RawMessage `json:"items"`
}

// Port is a named container port of an endpoint.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
}

// RunRequest starts a workload in a new endpoint.
type RunRequest struct {
	Name           string            `json:"name"`
	Namespace      string            `json:"namespace"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount,omitempty"`
	Ports          []Port            `json:"ports,omitempty"`
	Command        []string          `json:"command"`
}

// Counters are an endpoint's packet counters by direction and verdict.
type Counters struct {
	IngressForwarded uint64 `json:"ingressForwarded"`
	IngressDropped   uint64 `json:"ingressDropped"`
	EgressForwarded  uint64 `json:"egressForwarded"`
	EgressDropped    uint64 `json:"egressDropped"`
}

// Endpoint describes one endpoint of the node.
type Endpoint struct {
	ID              uint16            `json:"id"`
	Namespace       string            `json:"namespace"`
	Name            string            `json:"name"`
	Identity        uint32            `json:"identity"`
	Labels          map[string]string `json:"labels,omitempty"`
	IdentityLabels  []string          `json:"identityLabels,omitempty"`
	IPv4            string            `json:"ipv4,omitempty"`
	IPv6            string            `json:"ipv6,omitempty"`
	Interface       string            `json:"interface,omitempty"`
	NetNS           string            `json:"netns,omitempty"`
	IngressEnforced bool              `json:"ingressEnforced"`
	EgressEnforced  bool              `json:"egressEnforced"`
	Audit           bool              `json:"audit"`
	State           string            `json:"state"`
	PID             int               `json:"pid,omitempty"`
	Counters        Counters          `json:"counters"`
}

// FlowPeer is one side of a flow.
type FlowPeer struct {
	Addr     string `json:"addr"`
	Port     uint16 `json:"port,omitempty"`
	Identity uint32 `json:"identity"`
	Name     string `json:"name"` // namespace/name of an endpoint, or a reserved identity's name
	// Principal is the peer's SPIFFE ID, in proxy records of mutual TLS.
	Principal string `json:"principal,omitempty"`
}

// Flow is one flow event from the datapath.
type Flow struct {
	Time       time.Time `json:"time"`
	Endpoint   string    `json:"endpoint"`
	Direction  string    `json:"direction"`
	Protocol   string    `json:"protocol"`
	Source     FlowPeer  `json:"source"`
	Dest       FlowPeer  `json:"destination"`
	ICMPType   *uint8    `json:"icmpType,omitempty"`
	Verdict    string    `json:"verdict"` // FORWARDED, DROPPED or AUDIT
	DropReason string    `json:"dropReason,omitempty"`
	Policy     string    `json:"policy,omitempty"` // the deciding rule, "Kind/ns/name path"
	Bytes      uint32    `json:"bytes"`

	// Layer is "kernel" for the datapath's records (empty in older
	// nodes' output) and "proxy" for the node proxy's. The fields below
	// are the proxy's.
	Layer     string        `json:"layer,omitempty"`
	Transport string        `json:"transport,omitempty"` // HBONE or plaintext
	Kind      string        `json:"kind,omitempty"`      // connection or request
	Method    string        `json:"method,omitempty"`
	Path      string        `json:"path,omitempty"`
	Status    int           `json:"status,omitempty"`
	Latency   time.Duration `json:"latency,omitempty"`
	BytesIn   int64         `json:"bytesIn,omitempty"`  // client to application
	BytesOut  int64         `json:"bytesOut,omitempty"` // application to client
}

// Status summarises the node.
type Status struct {
	Version      string        `json:"version"`
	Uptime       time.Duration `json:"uptime"`
	StateDir     string        `json:"stateDir"`
	Store        string        `json:"store"`
	PodCIDRs     []string      `json:"podCIDRs"`
	Endpoints    int           `json:"endpoints"`
	Policies     int           `json:"policies"`
	Identities   int           `json:"identities"`
	PinDir       string        `json:"pinDir"`
	MetricsAddr  string        `json:"metricsAddr"`
	FlowsSeen    uint64        `json:"flowsSeen"`
	FlowsDropped uint64        `json:"flowsDropped"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error  string       `json:"error"`
	Fields []FieldError `json:"fields,omitempty"`
}

// FlowFilterSpec selects flows by verdict, and by namespace and pod on
// either side.
type FlowFilterSpec struct {
	Verdict   string `json:"verdict,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
}

// CAStatus is the node CA's state and the certificates of the node's mesh
// workloads, for `rampart cert list`.
type CAStatus struct {
	ca.Status
	Workloads []WorkloadCert `json:"workloads"`
}

// WorkloadCert is the current certificate of one mesh workload.
type WorkloadCert struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	ca.LeafInfo
	// Chain is the certificate chain in PEM, leaf first, for `rampart cert
	// show`.
	Chain string `json:"chain,omitempty"`
}

// RotateRequest asks the CA to take one step of a root rotation: "start"
// (a new root joins the bundle), "promote" (the new root signs now) or
// "finish" (the old root leaves the bundle now).
type RotateRequest struct {
	Step string `json:"step"`
}
