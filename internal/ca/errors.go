package ca

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var (
	// ErrInvalidCSR is matched by every error about a certificate signing
	// request the Authority refuses to sign; the error is a *CSRError.
	ErrInvalidCSR = errors.New("invalid certificate signing request")
	// ErrInvalidIdentity is matched by errors about a namespace, service
	// account or SPIFFE ID that is not a workload identity; the error is an
	// *IdentityError.
	ErrInvalidIdentity = errors.New("invalid workload identity")
	// ErrInvalidTTL is returned when a requested certificate lifetime is
	// negative or longer than Options.MaxWorkloadTTL.
	ErrInvalidTTL = errors.New("invalid certificate lifetime")
	// ErrCAExpired is returned by Sign when the signing certificate (or a
	// certificate above it) has expired, so no leaf can be valid.
	ErrCAExpired = errors.New("signing certificate expired")
	// ErrPlugin is matched by every error about the files of a plug-in CA;
	// the error is a *PluginError naming the file.
	ErrPlugin = errors.New("invalid plug-in CA")
	// ErrPluginManaged is returned by the rotation methods when the CA is
	// plugged in: its roots are the operator's, rotated by replacing the
	// files (see docs/ca.md).
	ErrPluginManaged = errors.New("the plug-in CA is rotated by replacing its files")
	// ErrRotationInProgress is returned by Rotate when a rotation has not
	// finished yet; starting another would leave three roots in play.
	ErrRotationInProgress = errors.New("a root rotation is in progress")
	// ErrNoRotation is returned by Promote and FinishRotation when no
	// rotation is in progress.
	ErrNoRotation = errors.New("no root rotation in progress")
	// ErrState is matched by errors about a state directory whose files are
	// missing, malformed or inconsistent.
	ErrState = errors.New("invalid CA state")

	// ErrPeerRejected is matched by every peer verification failure; the
	// error is a *PeerError whose Kind is one of the errors below.
	ErrPeerRejected = errors.New("peer rejected")
	// ErrNoPeerCertificate: the peer presented no certificate.
	ErrNoPeerCertificate = errors.New("no peer certificate")
	// ErrNoSPIFFEID: the peer's leaf does not carry exactly one URI SAN
	// that is a well-formed SPIFFE ID.
	ErrNoSPIFFEID = errors.New("no SPIFFE ID")
	// ErrForeignTrustDomain: the peer's SPIFFE ID is in another trust
	// domain than the bundle.
	ErrForeignTrustDomain = errors.New("foreign trust domain")
	// ErrLeafIsCA: the peer's leaf is a CA certificate (CA:true).
	ErrLeafIsCA = errors.New("leaf is a CA")
	// ErrBadKeyUsage: the peer's leaf lacks digitalSignature, may sign
	// certificates or CRLs, or lacks the extended key usage for its role.
	ErrBadKeyUsage = errors.New("bad key usage")
	// ErrExpired: the peer's leaf is past its NotAfter.
	ErrExpired = errors.New("certificate expired")
	// ErrNotYetValid: the peer's leaf is before its NotBefore.
	ErrNotYetValid = errors.New("certificate not yet valid")
	// ErrUntrustedChain: the peer's chain does not lead to a root of the
	// trust bundle.
	ErrUntrustedChain = errors.New("untrusted chain")
	// ErrUnauthorized: the peer is valid but not the identity wanted.
	ErrUnauthorized = errors.New("unauthorized peer")
)

// CSRError says why a certificate signing request was refused. It matches
// ErrInvalidCSR with errors.Is and unwraps to the parser's or verifier's
// error, if any.
type CSRError struct {
	Reason string // what is wrong, e.g. "csr key is ECDSA on P-384, want P-256"
	Err    error  // the underlying error, or nil
}

func (e *CSRError) Error() string {
	if e.Err == nil {
		return "ca: " + e.Reason
	}
	return "ca: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *CSRError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidCSR) true.
func (e *CSRError) Is(target error) bool { return target == ErrInvalidCSR }

// IdentityError says which part of a workload identity is malformed. It
// matches ErrInvalidIdentity with errors.Is.
type IdentityError struct {
	Field  string // "namespace", "service account", "trust domain" or "SPIFFE ID"
	Value  string // the offending value
	Reason string
}

func (e *IdentityError) Error() string {
	v := e.Value
	if len(v) > 80 {
		v = v[:80] + "..."
	}
	return "ca: " + e.Field + " " + strconv.Quote(v) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidIdentity) true.
func (e *IdentityError) Is(target error) bool { return target == ErrInvalidIdentity }

// PluginError names the plug-in CA file that is missing, malformed or does
// not match the others. It matches ErrPlugin with errors.Is.
type PluginError struct {
	File string // the path of the file at fault
	Err  error
}

func (e *PluginError) Error() string { return "ca: plug-in " + e.File + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PluginError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrPlugin) true.
func (e *PluginError) Is(target error) bool { return target == ErrPlugin }

// PeerError says why a peer's certificate was refused. Kind is one of the
// peer sentinels (ErrNoSPIFFEID, ErrExpired, ...), so callers can count
// refusals by cause with errors.Is; it also matches ErrPeerRejected.
type PeerError struct {
	ID     spiffeid.ID // the peer's ID, zero if it has none
	Kind   error       // the rule broken, one of the peer sentinels
	Detail string      // a sentence for the log
	Err    error       // the underlying error, or nil
}

func (e *PeerError) Error() string {
	var b strings.Builder
	b.WriteString("ca: verify peer")
	if !e.ID.IsZero() {
		b.WriteString(" ")
		b.WriteString(e.ID.String())
	}
	b.WriteString(": ")
	b.WriteString(e.Detail)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the underlying error.
func (e *PeerError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Is makes errors.Is(err, ErrPeerRejected) true.
func (e *PeerError) Is(target error) bool { return target == ErrPeerRejected }
