package resource

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// CiliumNetworkPolicy is cilium.io/v2 CiliumNetworkPolicy (namespaced) and,
// with Kind CiliumClusterwideNetworkPolicy, its cluster-wide sibling. The
// fields mirror Cilium's api.Rule so that existing manifests decode
// unchanged; fields Rampart does not enforce yet are decoded so that they can
// be rejected with a precise "not supported" error rather than an "unknown
// field" one.
type CiliumNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              *CiliumRule    `json:"spec,omitempty"`
	Specs             []CiliumRule   `json:"specs,omitempty"`
	Status            map[string]any `json:"status,omitempty"`
}

// Rules returns spec followed by specs, the order Cilium evaluates them in.
func (p *CiliumNetworkPolicy) Rules() []CiliumRule {
	var out []CiliumRule
	if p.Spec != nil {
		out = append(out, *p.Spec)
	}
	return append(out, p.Specs...)
}

// CiliumRule is one Cilium policy rule.
type CiliumRule struct {
	EndpointSelector  *metav1.LabelSelector `json:"endpointSelector,omitempty"`
	NodeSelector      *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	Ingress           []CiliumIngressRule   `json:"ingress,omitempty"`
	IngressDeny       []CiliumIngressRule   `json:"ingressDeny,omitempty"`
	Egress            []CiliumEgressRule    `json:"egress,omitempty"`
	EgressDeny        []CiliumEgressRule    `json:"egressDeny,omitempty"`
	Labels            []CiliumLabel         `json:"labels,omitempty"`
	EnableDefaultDeny *DefaultDenyConfig    `json:"enableDefaultDeny,omitempty"`
	Description       string                `json:"description,omitempty"`
	Log               map[string]any        `json:"log,omitempty"`
}

// DefaultDenyConfig is Cilium's enableDefaultDeny: nil fields mean "true if
// the rule has rules in that direction".
type DefaultDenyConfig struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// CiliumLabel is a rule label (key, value, source).
type CiliumLabel struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source,omitempty"`
}

// CiliumIngressRule is an ingress or ingressDeny rule. Deny rules use the
// same shape without L7 rules; validation rejects rules.* under ingressDeny.
type CiliumIngressRule struct {
	FromEndpoints []metav1.LabelSelector `json:"fromEndpoints,omitempty"`
	FromRequires  []metav1.LabelSelector `json:"fromRequires,omitempty"`
	FromCIDR      []string               `json:"fromCIDR,omitempty"`
	FromCIDRSet   []CIDRRule             `json:"fromCIDRSet,omitempty"`
	FromEntities  []string               `json:"fromEntities,omitempty"`
	FromGroups    []map[string]any       `json:"fromGroups,omitempty"`
	FromNodes     []metav1.LabelSelector `json:"fromNodes,omitempty"`
	ToPorts       []PortRule             `json:"toPorts,omitempty"`
	ICMPs         []ICMPRule             `json:"icmps,omitempty"`
	// Authentication is Cilium's mutual-auth knob; Rampart's mesh replaces it.
	Authentication map[string]any `json:"authentication,omitempty"`
}

// CiliumEgressRule is an egress or egressDeny rule.
type CiliumEgressRule struct {
	ToEndpoints    []metav1.LabelSelector `json:"toEndpoints,omitempty"`
	ToRequires     []metav1.LabelSelector `json:"toRequires,omitempty"`
	ToCIDR         []string               `json:"toCIDR,omitempty"`
	ToCIDRSet      []CIDRRule             `json:"toCIDRSet,omitempty"`
	ToEntities     []string               `json:"toEntities,omitempty"`
	ToServices     []map[string]any       `json:"toServices,omitempty"`
	ToGroups       []map[string]any       `json:"toGroups,omitempty"`
	ToNodes        []metav1.LabelSelector `json:"toNodes,omitempty"`
	ToFQDNs        []FQDNSelector         `json:"toFQDNs,omitempty"`
	ToPorts        []PortRule             `json:"toPorts,omitempty"`
	ICMPs          []ICMPRule             `json:"icmps,omitempty"`
	Authentication map[string]any         `json:"authentication,omitempty"`
}

// CIDRRule is a CIDR with exceptions (fromCIDRSet/toCIDRSet).
type CIDRRule struct {
	CIDR              string                `json:"cidr,omitempty"`
	CIDRGroupRef      string                `json:"cidrGroupRef,omitempty"`
	CIDRGroupSelector *metav1.LabelSelector `json:"cidrGroupSelector,omitempty"`
	Except            []string              `json:"except,omitempty"`
}

// FQDNSelector is a toFQDNs entry.
type FQDNSelector struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// PortRule is a toPorts entry: ports plus optional L7 rules.
type PortRule struct {
	Ports          []PortProtocol `json:"ports,omitempty"`
	Rules          *L7Rules       `json:"rules,omitempty"`
	TerminatingTLS map[string]any `json:"terminatingTLS,omitempty"`
	OriginatingTLS map[string]any `json:"originatingTLS,omitempty"`
	ServerNames    []string       `json:"serverNames,omitempty"`
	Listener       map[string]any `json:"listener,omitempty"`
}

// PortProtocol is a port (number or name; "0" or empty means every port),
// an optional endPort and a protocol (TCP, UDP, SCTP or ANY, the default).
type PortProtocol struct {
	Port     string `json:"port,omitempty"`
	EndPort  int32  `json:"endPort,omitempty"`
	Protocol string `json:"protocol,omitempty"`
}

// L7Rules holds the application-layer rules of a port rule.
type L7Rules struct {
	HTTP    []HTTPRule       `json:"http,omitempty"`
	DNS     []FQDNSelector   `json:"dns,omitempty"`
	Kafka   []map[string]any `json:"kafka,omitempty"`
	L7Proto string           `json:"l7proto,omitempty"`
	L7      []map[string]any `json:"l7,omitempty"`
}

// HTTPRule is one rules.http entry. Path, Method and Host are extended
// regular expressions matched against the whole value; Headers entries are
// "Name" (presence) or "Name: value".
type HTTPRule struct {
	Path          string        `json:"path,omitempty"`
	Method        string        `json:"method,omitempty"`
	Host          string        `json:"host,omitempty"`
	Headers       []string      `json:"headers,omitempty"`
	HeaderMatches []HeaderMatch `json:"headerMatches,omitempty"`
}

// HeaderMatch is a header name and value that must be present.
type HeaderMatch struct {
	Name     string         `json:"name"`
	Value    string         `json:"value,omitempty"`
	Mismatch string         `json:"mismatch,omitempty"`
	Secret   map[string]any `json:"secret,omitempty"`
}

// ICMPRule is an icmps entry.
type ICMPRule struct {
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is an ICMP type (number or Cilium's name, such as EchoRequest)
// for a family (IPv4, the default, or IPv6).
type ICMPField struct {
	Family string              `json:"family,omitempty"`
	Type   *intstr.IntOrString `json:"type,omitempty"`
}
