package policy

import (
	"fmt"
	"strings"
)

// Direction is the direction of traffic relative to an endpoint.
type Direction uint8

// Directions.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Ingress {
		return "ingress"
	}
	return "egress"
}

// Protocol is an IP protocol number.
type Protocol uint8

// Protocols Rampart enforces.
const (
	ICMP   Protocol = 1
	TCP    Protocol = 6
	UDP    Protocol = 17
	ICMPv6 Protocol = 58
	SCTP   Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case ICMP:
		return "ICMP"
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case ICMPv6:
		return "ICMPv6"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// ParseProtocol parses a protocol name as the CLI accepts it.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(s) {
	case "TCP":
		return TCP, nil
	case "UDP":
		return UDP, nil
	case "SCTP":
		return SCTP, nil
	case "ICMP":
		return ICMP, nil
	case "ICMPV6":
		return ICMPv6, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP, SCTP, ICMP or ICMPv6)", s)
}

// IsICMP reports whether p is ICMP or ICMPv6, whose "port" is the ICMP type.
func (p Protocol) IsICMP() bool { return p == ICMP || p == ICMPv6 }

// PortRange is a set of ports of one protocol: [Lo, Hi], or a named port
// that resolves against the destination endpoint's container ports. For
// ICMP and ICMPv6, Lo and Hi hold the ICMP type.
type PortRange struct {
	Proto  Protocol
	Lo, Hi uint16
	Name   string
}

func (r PortRange) String() string {
	switch {
	case r.Name != "":
		return r.Name + "/" + r.Proto.String()
	case r.Proto.IsICMP():
		return fmt.Sprintf("%s type %d", r.Proto, r.Lo)
	case r.Lo == 0 && r.Hi == 65535:
		return "any/" + r.Proto.String()
	case r.Lo == r.Hi:
		return fmt.Sprintf("%d/%s", r.Lo, r.Proto)
	}
	return fmt.Sprintf("%d-%d/%s", r.Lo, r.Hi, r.Proto)
}

// NamedPort is a container port that policies can name.
type NamedPort struct {
	Port  uint16
	Proto Protocol
}

// Origin names the policy and rule a decision comes from, in the words a
// user can look up in their manifests.
type Origin struct {
	Kind      string
	Namespace string // empty for cluster-wide policies
	Name      string
	Path      string // the rule's field path, e.g. "spec.ingress[0]"; empty for a whole policy
	File      string
	Line      int
}

// Policy returns "Kind/namespace/name" (or "Kind/name").
func (o Origin) Policy() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

func (o Origin) String() string {
	if o.Path == "" {
		return o.Policy()
	}
	return o.Policy() + " " + o.Path
}
