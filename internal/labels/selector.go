package labels

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Operator is a selector requirement's operator, as in Kubernetes
// LabelSelectorRequirement.
type Operator string

// The operators Kubernetes and Cilium selectors accept.
const (
	In           Operator = "In"
	NotIn        Operator = "NotIn"
	Exists       Operator = "Exists"
	DoesNotExist Operator = "DoesNotExist"
)

// Requirement is one condition on one label key.
type Requirement struct {
	Key    string
	Op     Operator
	Values []string // sorted; empty for Exists and DoesNotExist
}

func (r Requirement) matches(s Set) bool {
	v, ok := s.m[r.Key]
	switch r.Op {
	case In:
		return ok && slices.Contains(r.Values, v)
	case NotIn:
		// As in Kubernetes, a missing key satisfies NotIn.
		return !ok || !slices.Contains(r.Values, v)
	case Exists:
		return ok
	case DoesNotExist:
		return !ok
	}
	return false
}

func (r Requirement) String() string {
	switch r.Op {
	case Exists:
		return r.Key
	case DoesNotExist:
		return "!" + r.Key
	case In:
		if len(r.Values) == 1 {
			return r.Key + "=" + r.Values[0]
		}
		return r.Key + " in (" + strings.Join(r.Values, ",") + ")"
	default:
		return r.Key + " notin (" + strings.Join(r.Values, ",") + ")"
	}
}

// Selector is a conjunction of requirements. The zero Selector matches every
// set, as an empty Kubernetes label selector does.
type Selector struct {
	reqs []Requirement // sorted by String form, so equal selectors print alike
}

// Everything returns the selector that matches every set.
func Everything() Selector { return Selector{} }

// Nothing returns a selector that matches no set, used where an API says a
// missing selector selects nothing.
func Nothing() Selector {
	return Selector{reqs: []Requirement{{Key: ReservedPrefix + "none", Op: In, Values: []string{"\x00"}}}}
}

// KeyFunc rewrites a selector key, for example to strip Cilium's "k8s:"
// source prefix or to move a namespace selector onto namespace label keys.
type KeyFunc func(string) string

// FromLabelSelector compiles a Kubernetes label selector. Keys pass through
// key (nil keeps them). It fails on an unknown operator or on values that do
// not fit the operator, which decoding also reports with a line number.
func FromLabelSelector(ls *metav1.LabelSelector, key KeyFunc) (Selector, error) {
	if ls == nil {
		return Everything(), nil
	}
	if key == nil {
		key = func(k string) string { return k }
	}
	var reqs []Requirement
	for k, v := range ls.MatchLabels {
		reqs = append(reqs, Requirement{Key: key(k), Op: In, Values: []string{v}})
	}
	for i, e := range ls.MatchExpressions {
		op := Operator(e.Operator)
		vals := slices.Clone(e.Values)
		slices.Sort(vals)
		switch op {
		case In, NotIn:
			if len(vals) == 0 {
				return Selector{}, fmt.Errorf("matchExpressions[%d]: operator %s needs at least one value", i, op)
			}
		case Exists, DoesNotExist:
			if len(vals) != 0 {
				return Selector{}, fmt.Errorf("matchExpressions[%d]: operator %s takes no values", i, op)
			}
		default:
			return Selector{}, fmt.Errorf("matchExpressions[%d]: unknown operator %q (want In, NotIn, Exists or DoesNotExist)", i, e.Operator)
		}
		reqs = append(reqs, Requirement{Key: key(e.Key), Op: op, Values: vals})
	}
	return NewSelector(reqs...), nil
}

// NewSelector returns the conjunction of reqs.
func NewSelector(reqs ...Requirement) Selector {
	reqs = slices.Clone(reqs)
	slices.SortFunc(reqs, func(a, b Requirement) int { return strings.Compare(a.String(), b.String()) })
	reqs = slices.CompactFunc(reqs, func(a, b Requirement) bool { return a.String() == b.String() })
	return Selector{reqs: reqs}
}

// And returns a selector that matches what both s and o match.
func (s Selector) And(o Selector) Selector {
	return NewSelector(append(slices.Clone(s.reqs), o.reqs...)...)
}

// With returns s with one more requirement.
func (s Selector) With(r Requirement) Selector {
	return NewSelector(append(slices.Clone(s.reqs), r)...)
}

// Matches reports whether set satisfies every requirement.
func (s Selector) Matches(set Set) bool {
	for _, r := range s.reqs {
		if !r.matches(set) {
			return false
		}
	}
	return true
}

// Empty reports whether s matches every set.
func (s Selector) Empty() bool { return len(s.reqs) == 0 }

// HasKey reports whether any requirement constrains key.
func (s Selector) HasKey(key string) bool {
	return slices.ContainsFunc(s.reqs, func(r Requirement) bool { return r.Key == key })
}

// HasKeyPrefix reports whether any requirement's key starts with prefix.
func (s Selector) HasKeyPrefix(prefix string) bool {
	return slices.ContainsFunc(s.reqs, func(r Requirement) bool { return strings.HasPrefix(r.Key, prefix) })
}

// Requirements returns a copy of the requirements.
func (s Selector) Requirements() []Requirement { return slices.Clone(s.reqs) }

// String returns the canonical form, "{}" for the empty selector. Equal
// selectors have equal strings, which the policy engine uses to share work.
func (s Selector) String() string {
	if len(s.reqs) == 0 {
		return "{}"
	}
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// CiliumKey strips the label-source prefix Cilium allows on selector keys
// ("k8s:", "any:", "container:", "unspec:"), keeping "reserved:" and "cidr:",
// which name Rampart's identity labels of the same meaning.
func CiliumKey(k string) string {
	for _, p := range []string{"k8s:", "any:", "container:", "unspec:"} {
		if rest, ok := strings.CutPrefix(k, p); ok {
			return rest
		}
	}
	return k
}

// NamespaceLabelKey maps a namespace label key onto the endpoint label that
// carries it, so that a namespaceSelector can match endpoint identities.
func NamespaceLabelKey(k string) string { return NamespaceLabelPrefix + k }
