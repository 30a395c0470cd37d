package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
)

// Authorizer makes every inbound decision of the proxy. The mesh package
// implements it from Istio AuthorizationPolicy and PeerAuthentication and
// from Cilium L7 rules; the proxy only calls it, in this order per
// connection: PeerMode (plaintext only), AuthorizeConn, NeedsHTTP, then
// AuthorizeHTTP per request when NeedsHTTP said so.
//
// An error from any method, a panic, or a decision that is not an explicit
// allow denies: the proxy fails closed. The methods are called on the
// connection's goroutine and must return promptly (no network calls):
// RemoveWorkload waits for connections in progress.
type Authorizer interface {
	// PeerMode returns the effective peer authentication mode for
	// plaintext connections to port of dst.
	PeerMode(dst Workload, port uint16) (PeerMode, error)
	// AuthorizeConn decides at the connection level, before any byte
	// reaches the application.
	AuthorizeConn(c Connection) (Decision, error)
	// NeedsHTTP reports whether connections to port of dst must be parsed
	// as HTTP/1.1 so that each request is authorized (an
	// AuthorizationPolicy with HTTP fields, a Cilium rules.http).
	NeedsHTTP(dst Workload, port uint16) (bool, error)
	// AuthorizeHTTP decides one HTTP request of a connection that
	// AuthorizeConn allowed.
	AuthorizeHTTP(r Request) (Decision, error)
}

// PeerMode is the peer authentication mode of a port, as in Istio's
// PeerAuthentication. The zero value is PeerStrict, so a forgotten mode
// refuses plaintext rather than admitting it.
type PeerMode int

const (
	// PeerStrict accepts only mutual TLS (HBONE); plaintext is closed.
	PeerStrict PeerMode = iota
	// PeerPermissive accepts HBONE and plaintext; plaintext connections
	// have no principal.
	PeerPermissive
	// PeerDisable is like PeerPermissive for the proxy: plaintext is
	// accepted (HBONE from mesh peers still works).
	PeerDisable
)

func (m PeerMode) String() string {
	switch m {
	case PeerStrict:
		return "STRICT"
	case PeerPermissive:
		return "PERMISSIVE"
	case PeerDisable:
		return "DISABLE"
	}
	return fmt.Sprintf("PeerMode(%d)", int(m))
}

// Connection is what the proxy knows about an inbound connection when it
// asks AuthorizeConn.
type Connection struct {
	// Transport is TransportHBONE or TransportPlaintext.
	Transport Transport
	// SourcePrincipal is the verified SPIFFE ID of the peer's certificate;
	// empty for plaintext.
	SourcePrincipal string
	// Source is the peer's address: for HBONE the source of the tunnel,
	// which is the client workload's own address.
	Source netip.AddrPort
	// Destination is the workload being connected to and DestinationPort
	// the application port (the CONNECT authority's, or the original
	// destination of captured plaintext).
	Destination     Workload
	DestinationPort uint16
	// SNI is the server name the client sent in the HBONE handshake;
	// empty for plaintext. It is not the application's own TLS SNI.
	SNI string
}

// Request is one HTTP request on an authorized connection.
type Request struct {
	Connection
	Method string
	// Host is the Host header (or :authority).
	Host string
	// Path is the request target's path exactly as the client sent it
	// (percent-encoding kept, no normalization) and Query its raw query;
	// the application receives the same bytes, so any normalization for
	// matching is the Authorizer's business.
	Path  string
	Query string
	// Header is the request's header; it must not be modified.
	Header http.Header
}

// Decision is the Authorizer's answer.
type Decision struct {
	// Allow admits the connection or request; anything else denies.
	Allow bool
	// Status and Body are the HTTP answer to a denied request: 403 with
	// "RBAC: access denied" (Istio) when zero, "Access denied" for Cilium
	// L7 rules, 401 when the request failed authentication. A denied
	// connection is closed (plaintext) or its CONNECT answered 403 (HBONE)
	// whatever they say.
	Status int
	Body   string
	// Policy names the policy that decided ("namespace/name"), Reason says
	// why; both go to records and logs, never to the client.
	Policy string
	Reason string
	// Path, on an allowed request, is the path to forward instead of the
	// client's: the normalized form the decision was made on, so that the
	// application serves exactly what was authorized (Envoy forwards the
	// normalized path too). It is in escaped form; empty keeps the
	// client's path.
	Path string
}

// Default answer to a denied HTTP request: what Istio's Envoy RBAC filter
// sends.
const (
	DeniedStatus = http.StatusForbidden
	DeniedBody   = "RBAC: access denied"
)

// guardedAuthorizer calls an Authorizer so that errors and panics deny.
type guardedAuthorizer struct{ a Authorizer }

func (g guardedAuthorizer) peerMode(dst Workload, port uint16) (mode PeerMode, err error) {
	defer func() {
		if r := recover(); r != nil {
			mode, err = PeerStrict, fmt.Errorf("authorizer panicked: %v", r)
		}
	}()
	mode, err = g.a.PeerMode(dst, port)
	if err != nil {
		return PeerStrict, fmt.Errorf("peer mode: %w", err)
	}
	switch mode {
	case PeerStrict, PeerPermissive, PeerDisable:
		return mode, nil
	}
	return PeerStrict, fmt.Errorf("peer mode: unknown mode %v", mode)
}

func (g guardedAuthorizer) conn(c Connection) (d Decision) {
	defer func() {
		if r := recover(); r != nil {
			d = deny(fmt.Sprintf("authorizer panicked: %v", r))
		}
	}()
	d, err := g.a.AuthorizeConn(c)
	if err != nil {
		return deny("authorize connection: " + err.Error())
	}
	return d
}

func (g guardedAuthorizer) needsHTTP(dst Workload, port uint16) (need bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("authorizer panicked: %v", r)
		}
	}()
	need, err = g.a.NeedsHTTP(dst, port)
	if err != nil {
		return false, fmt.Errorf("needs http: %w", err)
	}
	return need, nil
}

func (g guardedAuthorizer) request(r Request) (d Decision) {
	defer func() {
		if rec := recover(); rec != nil {
			d = deny(fmt.Sprintf("authorizer panicked: %v", rec))
		}
	}()
	d, err := g.a.AuthorizeHTTP(r)
	if err != nil {
		return deny("authorize request: " + err.Error())
	}
	return d
}

// deny is a denial by the proxy itself (no policy decided it).
func deny(reason string) Decision { return Decision{Reason: reason} }

// httpAnswer returns the status and body for a denied request.
func (d Decision) httpAnswer() (int, string) {
	status, body := d.Status, d.Body
	if status < 400 || status > 599 {
		status = DeniedStatus
	}
	if body == "" {
		if status == DeniedStatus {
			body = DeniedBody
		} else {
			body = http.StatusText(status)
		}
	}
	return status, body
}
