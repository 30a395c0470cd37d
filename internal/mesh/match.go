package mesh

import "strings"

// matchKind is one of Istio's four string match forms.
type matchKind uint8

const (
	matchExact    matchKind = iota // "abc"
	matchPrefix                    // "abc*"
	matchSuffix                    // "*abc"
	matchPresence                  // "*": any non-empty value
)

// StringMatch is Istio's string match, used by every string field of an
// AuthorizationPolicy: exact ("abc"), prefix ("abc*"), suffix ("*abc") and
// presence ("*", any non-empty value). It is compiled once from the policy
// text so that matching a request does no parsing and no allocation.
type StringMatch struct {
	kind matchKind
	s    string
	fold bool // ASCII case-insensitive, as Envoy's ignore_case (hosts)
}

// ParseStringMatch compiles Istio's match syntax. A '*' anywhere but at one
// end is taken literally: the validator rejects such values, and matching
// them exactly can never be wider than what the user wrote. With fold the
// match ignores ASCII case, as Istio does for hosts.
func ParseStringMatch(v string, fold bool) StringMatch {
	switch {
	case v == "*":
		return StringMatch{kind: matchPresence}
	case strings.HasPrefix(v, "*"):
		return StringMatch{kind: matchSuffix, s: v[1:], fold: fold}
	case strings.HasSuffix(v, "*"):
		return StringMatch{kind: matchPrefix, s: v[:len(v)-1], fold: fold}
	default:
		return StringMatch{kind: matchExact, s: v, fold: fold}
	}
}

// Match reports whether v matches. Presence matches any non-empty value;
// Istio compiles "*" to the regular expression ".+".
func (m StringMatch) Match(v string) bool {
	switch m.kind {
	case matchPresence:
		return v != ""
	case matchPrefix:
		return len(v) >= len(m.s) && m.eq(v[:len(m.s)], m.s)
	case matchSuffix:
		return len(v) >= len(m.s) && m.eq(v[len(v)-len(m.s):], m.s)
	default:
		return m.eq(v, m.s)
	}
}

func (m StringMatch) eq(a, b string) bool {
	if m.fold {
		return asciiEqualFold(a, b)
	}
	return a == b
}

// String returns the match in Istio's syntax.
func (m StringMatch) String() string {
	switch m.kind {
	case matchPresence:
		return "*"
	case matchPrefix:
		return m.s + "*"
	case matchSuffix:
		return "*" + m.s
	default:
		return m.s
	}
}

// asciiEqualFold compares ignoring ASCII case only, as Envoy's ignore_case
// does; Unicode folding would let distinct host names compare equal.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// principalMatch matches a request principal ("<iss>/<sub>") the way Istio
// does since it matches the iss and sub claims separately: the value is
// split at its last '/', and a '*' at either end applies to the part it
// touches. So "https://example.com/*" means issuer exactly
// "https://example.com" with any subject, and "*" means any issuer and any
// subject, both non-empty.
type principalMatch struct {
	iss, sub StringMatch
}

var anyValue = StringMatch{kind: matchPresence}

func parsePrincipalMatch(v string) principalMatch {
	idx := strings.LastIndexByte(v, '/')
	found := idx >= 0
	iss, sub := v, ""
	if found {
		iss, sub = v[:idx], v[idx+1:]
	}
	exact := func(s string) StringMatch { return StringMatch{kind: matchExact, s: s} }
	switch {
	case v == "*":
		return principalMatch{iss: anyValue, sub: anyValue}
	case strings.HasPrefix(v, "*"):
		if !found {
			return principalMatch{iss: anyValue, sub: StringMatch{kind: matchSuffix, s: v[1:]}}
		}
		m := principalMatch{sub: exact(sub)}
		if iss == "*" {
			m.iss = anyValue
		} else {
			m.iss = StringMatch{kind: matchSuffix, s: iss[1:]}
		}
		return m
	case strings.HasSuffix(v, "*"):
		if !found {
			return principalMatch{iss: StringMatch{kind: matchPrefix, s: v[:len(v)-1]}, sub: anyValue}
		}
		m := principalMatch{iss: exact(iss)}
		if sub == "*" {
			m.sub = anyValue
		} else {
			m.sub = StringMatch{kind: matchPrefix, s: sub[:len(sub)-1]}
		}
		return m
	default:
		return principalMatch{iss: exact(iss), sub: exact(sub)}
	}
}

func (m principalMatch) match(iss, sub string) bool {
	return m.iss.Match(iss) && m.sub.Match(sub)
}
