package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// SVIDSource is what the TLS configurations read on every handshake: the
// certificate to present, the bundle to verify the peer against, and the
// time to verify at. *Source implements it; so can a proxy's test double.
type SVIDSource interface {
	// TLSCertificate returns the workload's current certificate and key.
	TLSCertificate() (*tls.Certificate, error)
	// TrustBundle returns the roots trusted now, for one trust domain.
	TrustBundle() *x509bundle.Bundle
	// Now returns the time certificates are checked at.
	Now() time.Time
}

// Role is what a peer's certificate must be good for, from the verifier's
// side of the connection.
type Role int

const (
	// RoleServer: the peer is a server; its leaf needs serverAuth.
	RoleServer Role = iota + 1
	// RoleClient: the peer is a client; its leaf needs clientAuth.
	RoleClient
)

// VerifyPeer checks a peer's certificate chain, leaf first, as an X.509
// SVID of bundle's trust domain at now, and returns the peer's SPIFFE ID.
//
// The leaf must carry exactly one URI SAN, a SPIFFE ID in the bundle's
// trust domain; be CA:false; have keyUsage digitalSignature and neither
// keyCertSign nor cRLSign; allow the extended key usage of role (serverAuth
// or clientAuth) if it restricts them; be within its validity period; and
// chain, through the certificates that follow it, to a root of bundle.
// The last rule is go-spiffe's x509svid.Verify, which checks the others
// too; they are checked here first to name the rule a peer broke.
//
// Every error is a *PeerError.
func VerifyPeer(chain []*x509.Certificate, bundle *x509bundle.Bundle, role Role, now time.Time) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, &PeerError{Kind: ErrNoPeerCertificate, Detail: "no certificate presented"}
	}
	if bundle == nil {
		return spiffeid.ID{}, &PeerError{Kind: ErrUntrustedChain, Detail: "no trust bundle to verify against"}
	}
	leaf := chain[0]
	id, err := IDFromLeaf(leaf)
	if err != nil {
		return spiffeid.ID{}, &PeerError{Kind: ErrNoSPIFFEID, Detail: trimCA(err)}
	}
	if td := bundle.TrustDomain(); !id.MemberOf(td) {
		return id, &PeerError{ID: id, Kind: ErrForeignTrustDomain, Detail: fmt.Sprintf("trust domain %q is not %q", id.TrustDomain().Name(), td.Name())}
	}
	if err := checkLeafProfile(leaf, role); err != nil {
		return id, &PeerError{ID: id, Kind: errKind(err), Detail: err.Error()}
	}
	switch {
	case now.After(leaf.NotAfter):
		return id, &PeerError{ID: id, Kind: ErrExpired, Detail: "certificate expired at " + leaf.NotAfter.UTC().Format(time.RFC3339)}
	case now.Before(leaf.NotBefore):
		return id, &PeerError{ID: id, Kind: ErrNotYetValid, Detail: "certificate not valid until " + leaf.NotBefore.UTC().Format(time.RFC3339)}
	}
	if _, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(now)); err != nil {
		return id, &PeerError{ID: id, Kind: ErrUntrustedChain, Detail: "chain does not lead to a root of the trust bundle", Err: err}
	}
	return id, nil
}

// profileError is a leaf profile violation; kind is its peer sentinel.
type profileError struct {
	kind error
	msg  string
}

func (e *profileError) Error() string { return e.msg }

func errKind(err error) error {
	var pe *profileError
	if errors.As(err, &pe) {
		return pe.kind
	}
	return ErrPeerRejected
}

// checkLeafProfile checks the constraints of the SPIFFE X.509-SVID
// specification on a leaf, and the extended key usage of role (none when
// role is zero).
func checkLeafProfile(leaf *x509.Certificate, role Role) error {
	switch {
	case leaf.IsCA:
		return &profileError{ErrLeafIsCA, "leaf is a CA certificate (basicConstraints CA:true)"}
	case leaf.KeyUsage&x509.KeyUsageCertSign != 0:
		return &profileError{ErrBadKeyUsage, "leaf key usage includes keyCertSign"}
	case leaf.KeyUsage&x509.KeyUsageCRLSign != 0:
		return &profileError{ErrBadKeyUsage, "leaf key usage includes cRLSign"}
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return &profileError{ErrBadKeyUsage, "leaf key usage lacks digitalSignature"}
	}
	var want x509.ExtKeyUsage
	switch role {
	case RoleServer:
		want = x509.ExtKeyUsageServerAuth
	case RoleClient:
		want = x509.ExtKeyUsageClientAuth
	default:
		return nil
	}
	// No extendedKeyUsage extension means any use (RFC 5280 4.2.1.12).
	restricted := len(leaf.ExtKeyUsage) > 0 || len(leaf.UnknownExtKeyUsage) > 0
	if restricted && !slices.Contains(leaf.ExtKeyUsage, want) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		name := "serverAuth"
		if role == RoleClient {
			name = "clientAuth"
		}
		return &profileError{ErrBadKeyUsage, "leaf extended key usage lacks " + name}
	}
	return nil
}

// trimCA drops the package prefix of err's message, for use inside a
// message that has it already.
func trimCA(err error) string { return strings.TrimPrefix(err.Error(), "ca: ") }

// ServerTLSConfig returns the TLS configuration of a workload accepting
// mutual TLS. It requires TLS 1.3, presents src's certificate of the moment
// (so a renewal applies to the next handshake), requires a client
// certificate and verifies it with VerifyPeer against src's bundle of the
// moment (so a rotation does too), and then asks authorize, if not nil,
// whether that peer may connect; nil admits any workload of the trust
// domain, as Istio does before its authorization policies.
//
// Go's own verification is off (RequireAnyClientCert): it would check
// hostnames and know nothing of SPIFFE IDs. The verification is
// VerifyConnection's, which crypto/tls calls on every handshake, resumed
// ones included.
func ServerTLSConfig(src SVIDSource, authorize spiffeid.Matcher) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.TLSCertificate()
		},
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyConnection(src, cs, RoleClient, authorize)
		},
	}
}

// ClientTLSConfig returns the TLS configuration of a workload dialling a
// peer over mutual TLS. It requires TLS 1.3, presents src's certificate of
// the moment, and verifies the server with VerifyPeer against src's bundle
// of the moment; wantPeer, if not nil, then says whether the server is the
// one meant (spiffeid.MatchID, MatchOneOf, ...). nil admits any workload of
// the trust domain.
//
// InsecureSkipVerify only turns off Go's hostname-based verification,
// which does not apply to SPIFFE IDs; VerifyConnection verifies instead.
func ClientTLSConfig(src SVIDSource, wantPeer spiffeid.Matcher) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.TLSCertificate()
		},
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyConnection(src, cs, RoleServer, wantPeer)
		},
	}
}

func verifyConnection(src SVIDSource, cs tls.ConnectionState, role Role, match spiffeid.Matcher) error {
	id, err := VerifyPeer(cs.PeerCertificates, src.TrustBundle(), role, src.Now())
	if err != nil {
		return err
	}
	if match != nil {
		if err := match(id); err != nil {
			return &PeerError{ID: id, Kind: ErrUnauthorized, Detail: "not an authorized peer", Err: err}
		}
	}
	return nil
}

// PeerID returns the SPIFFE ID of the peer of a connection whose handshake
// used ServerTLSConfig or ClientTLSConfig, which verified it. On any other
// connection the ID is only what the peer claims.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if !cs.HandshakeComplete {
		return spiffeid.ID{}, errors.New("ca: peer id: handshake not complete")
	}
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, &PeerError{Kind: ErrNoPeerCertificate, Detail: "no certificate presented"}
	}
	id, err := IDFromLeaf(cs.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, &PeerError{Kind: ErrNoSPIFFEID, Detail: trimCA(err)}
	}
	return id, nil
}
