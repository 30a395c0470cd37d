package mesh

import "errors"

// ErrUnsupported is matched (with errors.Is) by every error that reports an
// Istio feature Rampart does not implement, so callers can tell "not built
// yet" from "wrong input".
var ErrUnsupported = errors.New("not supported by Rampart yet")

// UnsupportedError names the Istio feature that is not implemented. It
// matches ErrUnsupported.
type UnsupportedError struct {
	What string // for example "CUSTOM action"
	Why  string // optional detail
}

func (e *UnsupportedError) Error() string {
	if e.Why == "" {
		return e.What + " is not supported"
	}
	return e.What + " is not supported: " + e.Why
}

// Is reports whether target is ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// ErrCustomAction is the error a Decision carries when a CUSTOM policy
// matched the request. Istio hands such requests to an extension provider
// declared in MeshConfig; Rampart has none, so it does what Istio does when
// the provider cannot be found: it denies the requests the policy matches.
var ErrCustomAction error = &UnsupportedError{What: "CUSTOM action", Why: "extension providers are not implemented"}

// ErrJWTInvalid is matched (with errors.Is) by every *JWTError: a request
// carried a token that failed validation and must be rejected with 401.
var ErrJWTInvalid = errors.New("invalid JWT")

// JWTError explains why a token was rejected. Reason is the text Envoy's
// jwt_authn filter uses (for example "Jwt is expired"), which the proxy
// writes as the 401 response body, as Istio does.
type JWTError struct {
	Reason string
	Issuer string // the token's issuer when it could be read
	Err    error  // the underlying cause, if any
}

func (e *JWTError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying cause.
func (e *JWTError) Unwrap() error { return e.Err }

// Is reports whether target is ErrJWTInvalid.
func (e *JWTError) Is(target error) bool { return target == ErrJWTInvalid }

// The reasons Envoy's jwt_authn filter gives, reused so that Rampart's 401
// bodies read like Istio's.
const (
	reasonMalformed      = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
	reasonBadJSON        = "Jwt payload is an invalid JSON"
	reasonUnknownIssuer  = "Jwt issuer is not configured"
	reasonBadSignature   = "Jwt verification fails"
	reasonExpired        = "Jwt is expired"
	reasonNotYetValid    = "Jwt not yet valid"
	reasonAudience       = "Audiences in Jwt are not allowed"
	reasonNoKey          = "Jwks doesn't have key to match kid or alg from Jwt"
	reasonJWKSFetch      = "Jwks remote fetch is failed"
	reasonUnsupportedAlg = "Jwt algorithm is not supported"
)
