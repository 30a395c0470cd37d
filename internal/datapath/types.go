package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"
)

// ErrNotSupported is returned by Open on systems without eBPF TCX support,
// so that callers can tell "this OS cannot enforce" from a real failure.
var ErrNotSupported = errors.New("datapath: not supported on this operating system")

// ErrClosed is wrapped by FlowReader.Read after Close.
var ErrClosed = os.ErrClosed

// ErrInvalid is wrapped by every error that rejects a caller's argument, such
// as a port prefix with host bits set or an endpoint id of zero.
var ErrInvalid = errors.New("invalid argument")

// Identity is a numeric security identity. The numbering follows Cilium so
// that identities seen in flows mean the same thing in both systems.
type Identity uint32

// Reserved identities. They must match enum reserved_identity in
// bpf/types.h; TestConstantsMatchC keeps them in step.
const (
	// IdentityAny is the wildcard peer in policy keys; no endpoint has it.
	IdentityAny           Identity = 0
	IdentityHost          Identity = 1
	IdentityWorld         Identity = 2
	IdentityUnmanaged     Identity = 3
	IdentityHealth        Identity = 4
	IdentityInit          Identity = 5
	IdentityRemoteNode    Identity = 6
	IdentityKubeAPIServer Identity = 7
	// IdentityMinCluster is the first identity allocated for label sets.
	IdentityMinCluster Identity = 256
	// IdentityCIDRScope marks locally allocated CIDR identities: every
	// identity whose top byte is 0x01.
	IdentityCIDRScope Identity = 1 << 24

	identityScopeMask Identity = 0xff000000
	cidrClassFlag     Identity = 1 << 31
)

// IsCIDR reports whether id is a local CIDR identity.
func (id Identity) IsCIDR() bool { return id&identityScopeMask == IdentityCIDRScope }

// IsWorldOrCIDR reports whether Cilium-style CIDR rules apply to a peer
// with this identity: they match only peers outside the cluster.
func (id Identity) IsWorldOrCIDR() bool { return id == IdentityWorld || id.IsCIDR() }

// IsCIDRClass reports whether id is a CIDR class peer produced by
// CIDRClassPeer rather than a real identity.
func (id Identity) IsCIDRClass() bool { return id&cidrClassFlag != 0 }

// CIDRClassPeer returns the policy peer that stands for CIDR class c. Class
// ids live in their own space (1..2^31-1) and are set with the top bit so
// that they can never collide with a real identity in the policy map.
func CIDRClassPeer(c uint32) (Identity, error) {
	if c == 0 || c&uint32(cidrClassFlag) != 0 {
		return 0, fmt.Errorf("cidr class %d out of range 1..%d: %w", c, uint32(cidrClassFlag)-1, ErrInvalid)
	}
	return Identity(c) | cidrClassFlag, nil
}

// EndpointID identifies an endpoint on this node. Zero is not a valid id so
// that a forgotten field cannot silently address a real endpoint.
type EndpointID uint16

// Direction is seen from the endpoint: Ingress is traffic to it, Egress is
// traffic from it.
type Direction uint8

// Directions. They must match enum direction in bpf/types.h.
const (
	Ingress Direction = 0
	Egress  Direction = 1
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// IP protocol numbers used in policy keys and flows.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// Verdict is what a policy entry says about matching traffic.
type Verdict uint8

// Policy verdicts, in increasing precedence. They must match enum
// policy_verdict in bpf/types.h.
const (
	VerdictNone     Verdict = 0
	VerdictAllow    Verdict = 1
	VerdictDeny     Verdict = 2
	VerdictRedirect Verdict = 3
)

func (v Verdict) String() string {
	switch v {
	case VerdictNone:
		return "none"
	case VerdictAllow:
		return "allow"
	case VerdictDeny:
		return "deny"
	case VerdictRedirect:
		return "redirect"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// precedence orders verdicts for deny-wins resolution: deny beats a proxy
// redirect, which beats a plain allow.
func (v Verdict) precedence() int {
	switch v {
	case VerdictDeny:
		return 3
	case VerdictRedirect:
		return 2
	case VerdictAllow:
		return 1
	}
	return 0
}

// FlowVerdict is what happened to a packet, as reported in flows and
// counters.
type FlowVerdict uint8

// Flow verdicts. They must match enum flow_verdict in bpf/types.h.
const (
	FlowForwarded  FlowVerdict = 1
	FlowDropped    FlowVerdict = 2
	FlowAudit      FlowVerdict = 3
	FlowRedirected FlowVerdict = 4
)

func (v FlowVerdict) String() string {
	switch v {
	case FlowForwarded:
		return "FORWARDED"
	case FlowDropped:
		return "DROPPED"
	case FlowAudit:
		return "AUDIT"
	case FlowRedirected:
		return "REDIRECTED"
	}
	return fmt.Sprintf("VERDICT(%d)", uint8(v))
}

// DropReason says why a packet was dropped, or would have been in audit
// mode.
type DropReason uint8

// Drop reasons. They must match enum drop_reason in bpf/types.h.
const (
	ReasonNone DropReason = 0
	// ReasonPolicyDenied means an explicit deny entry matched.
	ReasonPolicyDenied DropReason = 1
	// ReasonDefaultDeny means the direction is enforced and nothing allowed
	// the packet.
	ReasonDefaultDeny DropReason = 2
	// ReasonCTNoEntry means a packet that cannot open a connection (a TCP
	// segment without SYN, an echo reply) had no conntrack entry and no
	// policy allowed it on its own.
	ReasonCTNoEntry DropReason = 3
	// ReasonInvalid means truncated or malformed headers.
	ReasonInvalid DropReason = 4
	// ReasonUnsupportedL3 means an ethertype other than IPv4, IPv6 or ARP.
	ReasonUnsupportedL3 DropReason = 5
	// ReasonNoEndpoint means programs are attached for an endpoint that has
	// no SetEndpoint configuration; the datapath fails closed.
	ReasonNoEndpoint DropReason = 6
)

func (r DropReason) String() string {
	switch r {
	case ReasonNone:
		return ""
	case ReasonPolicyDenied:
		return "policy denied"
	case ReasonDefaultDeny:
		return "default deny"
	case ReasonCTNoEntry:
		return "no conntrack entry"
	case ReasonInvalid:
		return "invalid packet"
	case ReasonUnsupportedL3:
		return "unsupported L3 protocol"
	case ReasonNoEndpoint:
		return "endpoint not configured"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// CTStatus is how conntrack classified a packet.
type CTStatus uint8

// Conntrack classifications. They must match enum ct_status in
// bpf/types.h.
const (
	CTNew         CTStatus = 0
	CTEstablished CTStatus = 1
	CTReply       CTStatus = 2
	CTRelated     CTStatus = 3
)

func (s CTStatus) String() string {
	switch s {
	case CTNew:
		return "new"
	case CTEstablished:
		return "established"
	case CTReply:
		return "reply"
	case CTRelated:
		return "related"
	}
	return fmt.Sprintf("ct(%d)", uint8(s))
}

// TCPState is the TCP state of a conntrack entry.
type TCPState uint8

// TCP states. They must match enum ct_tcp_state in bpf/types.h.
const (
	TCPNone        TCPState = 0
	TCPSynSent     TCPState = 1
	TCPEstablished TCPState = 2
	TCPClosing     TCPState = 3
)

// EventLevel selects which packets produce flow events.
type EventLevel uint8

// Event levels. They must match enum event_level in bpf/types.h.
const (
	// EventsDefault reports drops, audits and each new connection once.
	EventsDefault EventLevel = 0
	// EventsDrops reports drops and audits only.
	EventsDrops EventLevel = 1
	// EventsAll reports every packet; for debugging only.
	EventsAll EventLevel = 2
	// EventsNone reports nothing.
	EventsNone EventLevel = 3
)

// Endpoint flag bits stored in the endpoints map. They must match enum
// endpoint_flags in bpf/types.h.
const (
	flagIngressEnforced uint32 = 1 << 0
	flagEgressEnforced  uint32 = 1 << 1
	flagAudit           uint32 = 1 << 2
)

// EndpointConfig is what the datapath knows about an endpoint.
type EndpointConfig struct {
	// Identity is the endpoint's own security identity, reported as the
	// local side of its flows.
	Identity Identity
	// IfIndex is the host-side veth. The programs find their own endpoint
	// through the id baked in at load time; IfIndex is where other local
	// endpoints deliver to it (see Addrs).
	IfIndex int
	// IngressEnforced and EgressEnforced turn on default deny for that
	// direction. When a direction is not enforced, traffic is allowed unless
	// a deny entry matches, as for a pod that no NetworkPolicy selects.
	IngressEnforced bool
	EgressEnforced  bool
	// Audit makes would-be drops pass, reported with FlowAudit.
	Audit bool
	// Addrs are the endpoint's addresses, MAC the MAC of its interface
	// (eth0 in its namespace) and HostMAC that of the host-side veth.
	// With all of them and IfIndex, packets that another local endpoint
	// sends to Addrs are delivered straight into this endpoint's namespace
	// (bpf_redirect_peer) once both endpoints' policies allow them, unless
	// Config.DisableLocalRedirect; packets this endpoint sends are
	// delivered so only with a source address in Addrs. Without them
	// traffic to and from the endpoint is routed by the host.
	Addrs   []netip.Addr
	MAC     net.HardwareAddr
	HostMAC net.HardwareAddr
}

// Stats are global datapath counters that do not belong to an endpoint.
type Stats struct {
	// EventsRateLimited counts flow events suppressed by the per-CPU rate
	// limit.
	EventsRateLimited uint64
	// EventsRingbufFull counts flow events lost because userspace did not
	// drain the ring buffer in time.
	EventsRingbufFull uint64
	// CTCreateFailed counts new connections that passed policy but could
	// not be recorded; their replies are then subject to policy.
	CTCreateFailed uint64
	// CountersFull counts packets not counted because the counters map was
	// full.
	CountersFull uint64
}

// Counter is the traffic one endpoint saw in one direction with one
// verdict and reason, summed over CPUs.
type Counter struct {
	Endpoint  EndpointID
	Direction Direction
	Verdict   FlowVerdict
	Reason    DropReason
	Packets   uint64
	Bytes     uint64
}

// Config tunes conntrack timeouts and flow events. Zero fields select the
// defaults documented on each field, which are also what the datapath uses
// before SetConfig is ever called.
type Config struct {
	TCPSynTimeout         time.Duration // default 60s
	TCPEstablishedTimeout time.Duration // default 6h
	TCPClosingTimeout     time.Duration // default 10s
	UDPTimeout            time.Duration // default 60s
	SCTPTimeout           time.Duration // default 6h
	ICMPTimeout           time.Duration // default 30s
	OtherTimeout          time.Duration // default 60s
	// EventsPerSecond limits flow events per CPU; 0 selects 10000 and
	// EventsUnlimited disables the limit.
	EventsPerSecond uint32
	// EventsBurst is the token bucket size; 0 selects EventsPerSecond.
	EventsBurst uint32
	Events      EventLevel
	// ConntrackAccounting counts packets and bytes per connection in the
	// conntrack entries. Off, an established packet does not write its
	// entry, which keeps the entry's cache line shared between the CPUs
	// that handle the two directions; entries then count only the packet
	// that created them. Per-endpoint counters are kept either way.
	ConntrackAccounting bool
	// DisableLocalRedirect makes traffic between two local endpoints take
	// the host's routing, as it did before local delivery: out of the
	// source's veth, through IP forwarding, netfilter and the neighbour
	// table, into the destination's veth, whose to_endpoint decides its
	// ingress. By default (false) from_endpoint decides the destination's
	// ingress itself and, when both sides allow the packet, delivers it
	// into the destination's namespace with bpf_redirect_peer: the host's
	// forwarding path, netfilter hooks and the destination veth's egress
	// hook no longer see it. Flows and counters are the same either way.
	DisableLocalRedirect bool
}

// EventsUnlimited disables the flow event rate limit.
const EventsUnlimited = ^uint32(0)

// Flow is one decoded flow event.
type Flow struct {
	// Time is when the packet was seen, converted from the kernel's boot
	// clock.
	Time      time.Time
	Endpoint  EndpointID
	Direction Direction
	Src, Dst  netip.Addr
	// SrcPort and DstPort are the transport ports. For ICMP echo, SrcPort is
	// the identifier; for all ICMP, DstPort is type<<8|code, the same value
	// policy entries match.
	SrcPort, DstPort uint16
	Proto            uint8
	SrcIdentity      Identity
	DstIdentity      Identity
	Verdict          FlowVerdict
	Reason           DropReason
	// RuleID is the policy entry's rule id that decided the packet, or the
	// one that opened its connection; 0 for defaults.
	RuleID    uint32
	Length    uint32
	ProxyPort uint16
	CTStatus  CTStatus
	TCPFlags  uint8
}

// ICMPType returns the ICMP type of an ICMP or ICMPv6 flow.
func (f *Flow) ICMPType() uint8 { return uint8(f.DstPort >> 8) }

// ICMPCode returns the ICMP code of an ICMP or ICMPv6 flow.
func (f *Flow) ICMPCode() uint8 { return uint8(f.DstPort) }

// CTEntry is one conntrack entry. The tuple is that of the packet that
// opened the connection, as seen by Endpoint in Direction.
type CTEntry struct {
	Endpoint  EndpointID
	Direction Direction
	Proto     uint8
	// Src and Dst carry ports; for ICMP echo the identifier is the source
	// port and the destination port is zero.
	Src, Dst     netip.AddrPort
	Created      time.Time
	Expires      time.Time
	RuleID       uint32
	PeerIdentity Identity
	ProxyPort    uint16
	TCPState     TCPState
	Audit        bool
	Redirect     bool
	SeenReply    bool
	PacketsFwd   uint64
	BytesFwd     uint64
	PacketsRev   uint64
	BytesRev     uint64
}

// Peer returns the address of the endpoint's peer.
func (e *CTEntry) Peer() netip.Addr {
	if e.Direction == Egress {
		return e.Dst.Addr()
	}
	return e.Src.Addr()
}

// CTFilter selects conntrack entries to flush. Zero fields match anything,
// so the zero CTFilter flushes every entry of the endpoint.
type CTFilter struct {
	// Directions limits the flush to these directions; empty means both.
	Directions []Direction
	// Peer matches entries whose peer address is inside the prefix.
	Peer netip.Prefix
	// PeerIdentity matches entries opened by a peer with this identity,
	// for when an identity loses access.
	PeerIdentity Identity
	Proto        uint8
	// Port matches the destination port of the opening packet.
	Port uint16
	// RuleID matches entries opened under this rule, for when the rule is
	// removed.
	RuleID uint32
}

// Match reports whether e is selected by f (the endpoint is checked by the
// caller).
func (f *CTFilter) Match(e *CTEntry) bool {
	if len(f.Directions) > 0 {
		ok := false
		for _, d := range f.Directions {
			ok = ok || d == e.Direction
		}
		if !ok {
			return false
		}
	}
	if f.Peer.IsValid() && !f.Peer.Contains(e.Peer()) {
		return false
	}
	if f.PeerIdentity != 0 && f.PeerIdentity != e.PeerIdentity {
		return false
	}
	if f.Proto != 0 && f.Proto != e.Proto {
		return false
	}
	if f.Port != 0 && f.Port != e.Dst.Port() {
		return false
	}
	if f.RuleID != 0 && f.RuleID != e.RuleID {
		return false
	}
	return true
}

// BPFFSRoot is where bpffs is conventionally mounted.
const BPFFSRoot = "/sys/fs/bpf"

// Options configures Open.
type Options struct {
	// PinDir is the bpffs directory holding this instance's maps and links,
	// e.g. /sys/fs/bpf/rampart/<instance>. It is created if missing; if it
	// lies under BPFFSRoot and nothing is mounted there, bpffs is mounted.
	PinDir string

	// Map sizes; zero keeps the size compiled into bpf/datapath.c. Changing
	// a size of an existing pinned map makes Open fail with
	// ebpf.ErrMapIncompatible rather than silently dropping state: remove
	// the pins (Remove) to resize.
	IPCacheMaxEntries   uint32
	PolicyMaxEntries    uint32
	CIDRMaxEntries      uint32
	ConntrackMaxEntries uint32
	// RingBufferSize is the flow ring buffer size in bytes, a power of two
	// multiple of the page size.
	RingBufferSize uint32

	// Logger receives attach/detach records; nil discards them.
	Logger *slog.Logger
}

// IdentityEntry is one ipcache row.
type IdentityEntry struct {
	Prefix   netip.Prefix
	Identity Identity
}
