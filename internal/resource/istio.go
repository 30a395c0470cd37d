package resource

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Istio security kinds (security.istio.io v1 and v1beta1). They mirror
// istio.io/api's JSON form; Rampart decodes them strictly here and the mesh
// evaluates them.

// AuthorizationPolicy is security.istio.io AuthorizationPolicy.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
	Status            map[string]any          `json:"status,omitempty"`
}

// AuthorizationPolicySpec is the spec of an AuthorizationPolicy.
type AuthorizationPolicySpec struct {
	Selector   *WorkloadSelector  `json:"selector,omitempty"`
	TargetRef  *PolicyTargetRef   `json:"targetRef,omitempty"`
	TargetRefs []PolicyTargetRef  `json:"targetRefs,omitempty"`
	Rules      []AuthzRule        `json:"rules,omitempty"`
	Action     string             `json:"action,omitempty"`
	Provider   *ExtensionProvider `json:"provider,omitempty"`
}

// WorkloadSelector selects workloads by labels in the policy's namespace.
type WorkloadSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// PolicyTargetRef names a Gateway API or core object a policy attaches to.
type PolicyTargetRef struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// ExtensionProvider names a CUSTOM action's provider.
type ExtensionProvider struct {
	Name string `json:"name"`
}

// AuthzRule is one rule: from AND to AND when.
type AuthzRule struct {
	From []AuthzFrom      `json:"from,omitempty"`
	To   []AuthzTo        `json:"to,omitempty"`
	When []AuthzCondition `json:"when,omitempty"`
}

// AuthzFrom wraps a source.
type AuthzFrom struct {
	Source *AuthzSource `json:"source,omitempty"`
}

// AuthzSource lists the source attributes a request must match.
type AuthzSource struct {
	Principals           []string `json:"principals,omitempty"`
	NotPrincipals        []string `json:"notPrincipals,omitempty"`
	RequestPrincipals    []string `json:"requestPrincipals,omitempty"`
	NotRequestPrincipals []string `json:"notRequestPrincipals,omitempty"`
	Namespaces           []string `json:"namespaces,omitempty"`
	NotNamespaces        []string `json:"notNamespaces,omitempty"`
	IPBlocks             []string `json:"ipBlocks,omitempty"`
	NotIPBlocks          []string `json:"notIpBlocks,omitempty"`
	RemoteIPBlocks       []string `json:"remoteIpBlocks,omitempty"`
	NotRemoteIPBlocks    []string `json:"notRemoteIpBlocks,omitempty"`
	ServiceAccounts      []string `json:"serviceAccounts,omitempty"`
	NotServiceAccounts   []string `json:"notServiceAccounts,omitempty"`
}

// AuthzTo wraps an operation.
type AuthzTo struct {
	Operation *AuthzOperation `json:"operation,omitempty"`
}

// AuthzOperation lists the operation attributes a request must match.
type AuthzOperation struct {
	Hosts      []string `json:"hosts,omitempty"`
	NotHosts   []string `json:"notHosts,omitempty"`
	Ports      []string `json:"ports,omitempty"`
	NotPorts   []string `json:"notPorts,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	NotMethods []string `json:"notMethods,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	NotPaths   []string `json:"notPaths,omitempty"`
}

// AuthzCondition is a when condition on a request attribute.
type AuthzCondition struct {
	Key       string   `json:"key"`
	Values    []string `json:"values,omitempty"`
	NotValues []string `json:"notValues,omitempty"`
}

// PeerAuthentication is security.istio.io PeerAuthentication.
type PeerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              PeerAuthenticationSpec `json:"spec"`
	Status            map[string]any         `json:"status,omitempty"`
}

// PeerAuthenticationSpec is the spec of a PeerAuthentication.
type PeerAuthenticationSpec struct {
	Selector      *WorkloadSelector   `json:"selector,omitempty"`
	MTLS          *MTLSMode           `json:"mtls,omitempty"`
	PortLevelMTLS map[string]MTLSMode `json:"portLevelMtls,omitempty"`
}

// MTLSMode is UNSET, DISABLE, PERMISSIVE or STRICT.
type MTLSMode struct {
	Mode string `json:"mode,omitempty"`
}

// RequestAuthentication is security.istio.io RequestAuthentication.
type RequestAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RequestAuthenticationSpec `json:"spec"`
	Status            map[string]any            `json:"status,omitempty"`
}

// RequestAuthenticationSpec is the spec of a RequestAuthentication.
type RequestAuthenticationSpec struct {
	Selector   *WorkloadSelector `json:"selector,omitempty"`
	TargetRef  *PolicyTargetRef  `json:"targetRef,omitempty"`
	TargetRefs []PolicyTargetRef `json:"targetRefs,omitempty"`
	JWTRules   []JWTRule         `json:"jwtRules,omitempty"`
}

// JWTRule describes one accepted token issuer.
type JWTRule struct {
	Issuer                string          `json:"issuer"`
	Audiences             []string        `json:"audiences,omitempty"`
	JWKSURI               string          `json:"jwksUri,omitempty"`
	JWKS                  string          `json:"jwks,omitempty"`
	FromHeaders           []JWTHeader     `json:"fromHeaders,omitempty"`
	FromParams            []string        `json:"fromParams,omitempty"`
	FromCookies           []string        `json:"fromCookies,omitempty"`
	OutputPayloadToHeader string          `json:"outputPayloadToHeader,omitempty"`
	ForwardOriginalToken  bool            `json:"forwardOriginalToken,omitempty"`
	OutputClaimToHeaders  []ClaimToHeader `json:"outputClaimToHeaders,omitempty"`
	Timeout               string          `json:"timeout,omitempty"`
}

// JWTHeader is a header a token may come in, with an optional prefix such as
// "Bearer ".
type JWTHeader struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

// ClaimToHeader copies a claim into a request header.
type ClaimToHeader struct {
	Header string `json:"header"`
	Claim  string `json:"claim"`
}
