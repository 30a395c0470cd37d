package ca

import (
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultTrustDomain is Istio's default trust domain, used when none is set.
const DefaultTrustDomain = "cluster.local"

// WorkloadID returns the SPIFFE ID Istio gives a Kubernetes service account,
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>. The namespace
// must be a DNS label and the service account a DNS subdomain, as
// Kubernetes requires, so the ID cannot carry extra path segments or
// characters another implementation would read differently.
func WorkloadID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	if td.IsZero() {
		return spiffeid.ID{}, &IdentityError{Field: "trust domain", Reason: "must be set"}
	}
	if err := checkNamespace(namespace); err != nil {
		return spiffeid.ID{}, err
	}
	if err := checkServiceAccount(serviceAccount); err != nil {
		return spiffeid.ID{}, err
	}
	id, err := spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		// Unreachable: the checks above admit only SPIFFE path characters.
		return spiffeid.ID{}, &IdentityError{Field: "SPIFFE ID", Value: td.IDString() + "/ns/" + namespace + "/sa/" + serviceAccount, Reason: err.Error()}
	}
	return id, nil
}

// ParseWorkloadID returns the namespace and service account of a workload
// ID made by WorkloadID, and an error for any other SPIFFE ID.
func ParseWorkloadID(id spiffeid.ID) (namespace, serviceAccount string, err error) {
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if id.IsZero() || len(seg) != 4 || seg[0] != "ns" || seg[2] != "sa" {
		return "", "", &IdentityError{Field: "SPIFFE ID", Value: id.String(), Reason: "not a workload ID, want spiffe://<trust domain>/ns/<namespace>/sa/<service account>"}
	}
	if err := checkNamespace(seg[1]); err != nil {
		return "", "", err
	}
	if err := checkServiceAccount(seg[3]); err != nil {
		return "", "", err
	}
	return seg[1], seg[3], nil
}

// Principal renders id the way Istio's AuthorizationPolicy names a peer:
// the trust domain and path without the scheme, as in
// cluster.local/ns/default/sa/web.
func Principal(id spiffeid.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.TrustDomain().Name() + id.Path()
}

func checkNamespace(ns string) error {
	if !isDNSLabel(ns) {
		return &IdentityError{Field: "namespace", Value: ns, Reason: "must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"}
	}
	return nil
}

func checkServiceAccount(sa string) error {
	if len(sa) > 253 || !isDNSSubdomain(sa) {
		return &IdentityError{Field: "service account", Value: sa, Reason: "must be a DNS subdomain: at most 253 characters of dot-separated DNS labels"}
	}
	return nil
}

// isDNSLabel reports whether s is an RFC 1123 label as Kubernetes checks
// namespace names.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func isDNSSubdomain(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if !isDNSLabel(label) {
			return false
		}
	}
	return true
}
