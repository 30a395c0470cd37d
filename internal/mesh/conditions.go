package mesh

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// attr is the request attribute a field of a rule reads.
type attr uint8

const (
	attrSourcePrincipal attr = iota
	attrSourceNamespace
	attrServiceAccount
	attrRequestPrincipal
	attrSourceIP
	attrRemoteIP
	attrDestIP
	attrDestPort
	attrSNI
	attrHost
	attrMethod
	attrPath
	attrHeader
	attrAudiences
	attrPresenter
	attrClaim
)

// httpOnly reports whether Istio can evaluate the attribute only on HTTP
// requests. On a plain TCP connection such an attribute makes an ALLOW
// rule match nothing and is ignored (taken as matching) in DENY, AUDIT and
// CUSTOM rules: pilot/pkg/security/authz/model returns "is HTTP only" for
// these and the builder skips or widens the rule accordingly.
func (a attr) httpOnly() bool {
	switch a {
	case attrRequestPrincipal, attrHost, attrMethod, attrPath, attrHeader, attrAudiences, attrPresenter, attrClaim:
		return true
	}
	return false
}

// pattern is one value of a field, compiled for the field's attribute.
type pattern struct {
	str    StringMatch    // string attributes
	pm     principalMatch // request principals
	prefix netip.Prefix   // IP attributes
	port   uint16         // destination port
	ns, sa string         // service accounts
	raw    string         // as written, for traces
}

// field is one attribute test of a rule: the request matches when the
// attribute matches one of pos (if any) and none of neg. An attribute the
// request lacks (no principal, no such header) matches no pattern, so it
// fails pos and passes neg, as Envoy's RBAC Not(...) does.
type field struct {
	kind    attr
	posName string // "from[0].source.principals", for traces
	negName string
	header  string   // canonical header name (attrHeader)
	claim   []string // claim path (attrClaim)
	pos     []pattern
	neg     []pattern
}

// compiler compiles the fields of one policy and collects its errors
// against the object, so every error names the file, line and field.
type compiler struct {
	o    *resource.Object
	errs resource.ErrorList
}

func (c *compiler) fail(path, format string, args ...any) {
	c.errs = append(c.errs, c.o.Errorf(path, format, args...))
}

// newField compiles values and notValues for kind; base is the field path
// of the positive list and negName that of the negative one.
func (c *compiler) newField(kind attr, posName, negName string, values, notValues []string) (field, bool) {
	f := field{kind: kind, posName: posName, negName: negName}
	if len(values) == 0 && len(notValues) == 0 {
		return f, false
	}
	f.pos = c.patterns(kind, posName, values)
	f.neg = c.patterns(kind, negName, notValues)
	return f, true
}

func (c *compiler) patterns(kind attr, path string, vals []string) []pattern {
	if len(vals) == 0 {
		return nil
	}
	out := make([]pattern, 0, len(vals))
	for i, v := range vals {
		p := pattern{raw: v}
		vp := fmt.Sprintf("%s[%d]", path, i)
		switch kind {
		case attrSourceIP, attrRemoteIP, attrDestIP:
			pfx, err := resource.ParsePrefix(v, true)
			if err != nil {
				c.fail(vp, "%v", err)
				continue
			}
			p.prefix = pfx
		case attrDestPort:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65535 {
				c.fail(vp, "invalid port %q (want a number 0-65535)", v)
				continue
			}
			p.port = uint16(n)
		case attrRequestPrincipal:
			p.pm = parsePrincipalMatch(v)
		case attrServiceAccount:
			if strings.Contains(v, "*") {
				c.fail(vp, "serviceAccounts take no wildcards (want <name> or <namespace>/<name>), as Istio requires")
				continue
			}
			ns, sa, ok := strings.Cut(v, "/")
			if !ok {
				ns, sa = c.o.Namespace, v
			}
			if ns == "" || sa == "" || strings.Contains(sa, "/") {
				c.fail(vp, "invalid service account %q (want <name> or <namespace>/<name>)", v)
				continue
			}
			p.ns, p.sa = ns, sa
		case attrHost:
			p.str = ParseStringMatch(v, true)
		default:
			p.str = ParseStringMatch(v, false)
		}
		out = append(out, p)
	}
	return out
}

// condition compiles one when condition. The keys are those of Istio's
// "Authorization Policy Conditions" reference; request.auth.claims takes
// nested names as [a][b].
func (c *compiler) condition(cond resource.AuthzCondition, path string) (field, bool) {
	key := cond.Key
	name, arg, hasArg := strings.Cut(key, "[")
	var kind attr
	f := field{}
	switch {
	case !hasArg && name == "source.ip":
		kind = attrSourceIP
	case !hasArg && name == "remote.ip":
		kind = attrRemoteIP
	case !hasArg && name == "source.namespace":
		kind = attrSourceNamespace
	case !hasArg && name == "source.principal":
		kind = attrSourcePrincipal
	case !hasArg && name == "request.auth.principal":
		kind = attrRequestPrincipal
	case !hasArg && name == "request.auth.audiences":
		kind = attrAudiences
	case !hasArg && name == "request.auth.presenter":
		kind = attrPresenter
	case !hasArg && name == "destination.ip":
		kind = attrDestIP
	case !hasArg && name == "destination.port":
		kind = attrDestPort
	case !hasArg && name == "connection.sni":
		kind = attrSNI
	case hasArg && name == "request.headers":
		h, ok := strings.CutSuffix(arg, "]")
		if !ok || h == "" || strings.ContainsAny(h, "[]") {
			c.fail(path+".key", "invalid header key %q (want request.headers[<name>])", key)
			return f, false
		}
		kind, f.header = attrHeader, canonicalHeader(h)
	case hasArg && name == "request.auth.claims":
		claims, err := claimPath("[" + arg)
		if err != nil {
			c.fail(path+".key", "invalid claim key %q: %v", key, err)
			return f, false
		}
		kind, f.claim = attrClaim, claims
	default:
		c.fail(path+".key", "unknown condition key %q", key)
		return f, false
	}
	header, claim := f.header, f.claim
	f, ok := c.newField(kind, path+".values", path+".notValues", cond.Values, cond.NotValues)
	if !ok {
		c.fail(path, "values or notValues is required")
		return f, false
	}
	f.header, f.claim = header, claim
	return f, true
}

// claimPath splits "[a][b]" into ["a", "b"], Istio's syntax for nested
// claims. A name may contain dots: "[a.b]" is the one claim "a.b".
func claimPath(s string) ([]string, error) {
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") || len(s) < 3 {
		return nil, fmt.Errorf("want [name] or [name][nested]")
	}
	parts := strings.Split(s[1:len(s)-1], "][")
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, "[]") {
			return nil, fmt.Errorf("want [name] or [name][nested]")
		}
	}
	return parts, nil
}

// eval reports whether the request passes the field. With ignoreHTTP an
// HTTP-only attribute passes: that is how Istio builds DENY, AUDIT and
// CUSTOM rules for TCP filter chains.
func (f *field) eval(r *Request, ignoreHTTP bool) bool {
	if ignoreHTTP && f.kind.httpOnly() {
		return true
	}
	if len(f.pos) > 0 && !f.anyMatch(f.pos, r) {
		return false
	}
	if len(f.neg) > 0 && f.anyMatch(f.neg, r) {
		return false
	}
	return true
}

func (f *field) anyMatch(ps []pattern, r *Request) bool {
	switch f.kind {
	case attrSourceIP:
		return anyPrefix(ps, r.SourceIP)
	case attrRemoteIP:
		return anyPrefix(ps, r.RemoteIP)
	case attrDestIP:
		return anyPrefix(ps, r.DestinationIP)
	case attrDestPort:
		for i := range ps {
			if ps[i].port == r.DestinationPort {
				return true
			}
		}
		return false
	case attrServiceAccount:
		if r.srcNS == "" || r.srcSA == "" {
			return false
		}
		for i := range ps {
			if ps[i].ns == r.srcNS && ps[i].sa == r.srcSA {
				return true
			}
		}
		return false
	case attrRequestPrincipal:
		if r.Auth == nil || !r.Auth.Authenticated {
			return false
		}
		for i := range ps {
			if ps[i].pm.match(r.Auth.Issuer, r.Auth.Subject) {
				return true
			}
		}
		return false
	case attrHeader:
		v, ok := r.headerValue(f.header)
		if !ok {
			return false
		}
		for i := range ps {
			// "*" is Envoy's present_match: an empty value still counts.
			if ps[i].str.kind == matchPresence || ps[i].str.Match(v) {
				return true
			}
		}
		return false
	case attrAudiences:
		if r.Auth == nil || !r.Auth.Authenticated {
			return false
		}
		for _, a := range r.Auth.Audiences {
			if anyString(ps, a) {
				return true
			}
		}
		return false
	case attrPresenter:
		if r.Auth == nil || !r.Auth.Authenticated || r.Auth.Presenter == "" {
			return false
		}
		return anyString(ps, r.Auth.Presenter)
	case attrClaim:
		if r.Auth == nil || !r.Auth.Authenticated {
			return false
		}
		return claimMatches(ps, lookupClaim(r.Auth.Claims, f.claim))
	}
	var v string
	switch f.kind {
	case attrSourcePrincipal:
		v = r.SourcePrincipal
	case attrSourceNamespace:
		v = r.srcNS
	case attrSNI:
		v = r.SNI
	case attrHost:
		v = r.Host
	case attrMethod:
		v = r.Method
	case attrPath:
		v = r.pathOnly
	}
	if v == "" {
		return false
	}
	return anyString(ps, v)
}

func anyString(ps []pattern, v string) bool {
	for i := range ps {
		if ps[i].str.Match(v) {
			return true
		}
	}
	return false
}

func anyPrefix(ps []pattern, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for i := range ps {
		if ps[i].prefix.Contains(a) {
			return true
		}
	}
	return false
}

// lookupClaim walks nested claims; it returns nil when a step is missing
// or is not an object.
func lookupClaim(claims map[string]any, path []string) any {
	var cur any = claims
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur, ok = m[k]
		if !ok {
			return nil
		}
	}
	return cur
}

// claimMatches matches a string claim, or any string element of a list
// claim, as Istio's JWT claim matcher does; other types never match.
func claimMatches(ps []pattern, v any) bool {
	switch x := v.(type) {
	case string:
		return anyString(ps, x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && anyString(ps, s) {
				return true
			}
		}
	case []string:
		for _, s := range x {
			if anyString(ps, s) {
				return true
			}
		}
	}
	return false
}
