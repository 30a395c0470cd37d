package mesh

import (
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
)

// Request is what the proxy knows about one connection (HTTP false) or one
// HTTP request (HTTP true) arriving at a workload. For plain TCP only the
// connection fields are set; Istio's HTTP-only fields are then handled as
// Istio's TCP filter chain handles them (see Authorize).
type Request struct {
	// HTTP is true when the proxy parsed an HTTP request. Call Authorize
	// per request on HTTP ports and once per connection otherwise, never
	// both for the same traffic.
	HTTP bool

	// SourcePrincipal is the peer's identity from its mTLS certificate in
	// Istio's form, without "spiffe://": "cluster.local/ns/foo/sa/bar".
	// It is empty for plaintext. A leading "spiffe://" is tolerated.
	SourcePrincipal string

	// SourceIP is the peer address of the connection; RemoteIP the original
	// client address (X-Forwarded-For or proxy protocol). Rampart does not
	// trust forwarding headers yet, so RemoteIP defaults to SourceIP.
	SourceIP netip.Addr
	RemoteIP netip.Addr

	DestinationIP   netip.Addr
	DestinationPort uint16

	// SNI is the TLS server name the client asked for, if any.
	SNI string

	// Host, Method and Path come from the HTTP request. Path may carry a
	// query string, which matching ignores as Istio does; it should already
	// be normalized (see NormalizePath) and must be the path the proxy
	// forwards, or a policy could be bypassed.
	Host   string
	Method string
	Path   string

	// Headers are the request headers. Names are matched case-insensitively;
	// repeated headers are matched as one value joined with ",", as Envoy
	// does.
	Headers http.Header

	// Auth is the result of Authenticate, or nil when the request carried
	// no token (or is not HTTP).
	Auth *AuthResult

	// Derived by prepare, so each is computed once per request.
	srcNS, srcSA string
	pathOnly     string
	hdrKeys      uint8
}

// SourceNamespace returns the namespace of the peer principal
// ("cluster.local/ns/foo/sa/bar" gives "foo"), or "" for plaintext. Istio
// derives source.namespace from the certificate in the same way, which is
// why namespaces fields never match plaintext traffic.
func (r *Request) SourceNamespace() string {
	ns, _ := splitPrincipal(strings.TrimPrefix(r.SourcePrincipal, "spiffe://"))
	return ns
}

// prepare fills the derived fields and the defaults. It works on the
// caller's copy, never on shared data.
func (r *Request) prepare() {
	r.SourcePrincipal = strings.TrimPrefix(r.SourcePrincipal, "spiffe://")
	r.srcNS, r.srcSA = splitPrincipal(r.SourcePrincipal)
	r.SourceIP = r.SourceIP.Unmap()
	r.DestinationIP = r.DestinationIP.Unmap()
	if r.RemoteIP.IsValid() {
		r.RemoteIP = r.RemoteIP.Unmap()
	} else {
		r.RemoteIP = r.SourceIP
	}
	r.hdrKeys = 0
	r.pathOnly = r.Path
	if i := strings.IndexAny(r.pathOnly, "?#"); i >= 0 {
		r.pathOnly = r.pathOnly[:i]
	}
}

// splitPrincipal reads the namespace and service account out of an Istio
// principal "<trust domain>/ns/<ns>/sa/<sa>".
func splitPrincipal(p string) (ns, sa string) {
	rest := p
	i := strings.Index(rest, "/ns/")
	if i < 0 {
		return "", ""
	}
	rest = rest[i+len("/ns/"):]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return rest, ""
	}
	ns, rest = rest[:j], rest[j:]
	if k := strings.Index(rest, "/sa/"); k >= 0 {
		sa = rest[k+len("/sa/"):]
		if m := strings.IndexByte(sa, '/'); m >= 0 {
			sa = sa[:m]
		}
	}
	return ns, sa
}

// header returns the values of a header and whether it is present,
// falling back to a case-insensitive scan for maps not built with Set.
func (r *Request) header(canonical string) ([]string, bool) {
	if v, ok := r.Headers[canonical]; ok {
		return v, true
	}
	if r.hdrKeys == 0 {
		// net/http canonicalizes every key; scan only maps that are not.
		r.hdrKeys = keysCanonical
		for k := range r.Headers {
			if textproto.CanonicalMIMEHeaderKey(k) != k {
				r.hdrKeys = keysMixed
				break
			}
		}
	}
	if r.hdrKeys == keysMixed {
		for k, v := range r.Headers {
			if strings.EqualFold(k, canonical) {
				return v, true
			}
		}
	}
	return nil, false
}

// Whether Headers has only canonical keys, found on the first miss.
const (
	keysCanonical = 1
	keysMixed     = 2
)

// headerValue returns a header as Envoy sees it: repeated values joined
// with ",". Host and the HTTP/2 pseudo-headers map to the request fields,
// because Go's net/http keeps them out of Header.
func (r *Request) headerValue(canonical string) (string, bool) {
	switch canonical {
	case "Host", ":authority":
		return r.Host, r.Host != ""
	case ":method":
		return r.Method, r.Method != ""
	case ":path":
		return r.Path, r.Path != ""
	}
	v, ok := r.header(canonical)
	switch {
	case !ok:
		return "", false
	case len(v) == 1:
		return v[0], true
	default:
		return strings.Join(v, ","), true
	}
}

// canonicalHeader returns the key a policy's header name is looked up by.
func canonicalHeader(name string) string {
	if strings.HasPrefix(name, ":") {
		return strings.ToLower(name)
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}
