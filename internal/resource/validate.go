package resource

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/rampartsec/rampart/internal/labels"
)

// validator collects the semantic errors of one object.
type validator struct {
	obj       *Object
	pathNames bool   // names need only be path segments (RBAC kinds)
	base      string // the object's path in its document
	errs      ErrorList
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, v.obj.errorf(v.base, path, format, args...))
}

func (v *validator) meta(m metav1.Object) {
	switch {
	case m.GetName() == "":
		v.add("metadata.name", "name is required")
	case v.pathNames:
		if msgs := content.IsPathSegmentName(m.GetName()); len(msgs) > 0 {
			v.add("metadata.name", "invalid name %q: %s", m.GetName(), strings.Join(msgs, "; "))
		}
	default:
		if msgs := validation.IsDNS1123Subdomain(m.GetName()); len(msgs) > 0 {
			v.add("metadata.name", "invalid name %q: %s", m.GetName(), strings.Join(msgs, "; "))
		}
	}
	if ns := m.GetNamespace(); ns != "" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			v.add("metadata.namespace", "invalid namespace %q: %s", ns, strings.Join(msgs, "; "))
		}
	}
	v.labelMap(m.GetLabels(), "metadata.labels")
}

func (v *validator) labelMap(m map[string]string, path string) {
	for k, val := range m {
		p := path + "." + k
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			v.add(p, "invalid label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(val); len(msgs) > 0 {
			v.add(p, "invalid label value %q: %s", val, strings.Join(msgs, "; "))
		}
	}
}

// selector checks a label selector: operators, values, and (through key)
// label-key syntax.
func (v *validator) selector(ls *metav1.LabelSelector, path string, cilium bool) {
	if ls == nil {
		return
	}
	for k, val := range ls.MatchLabels {
		v.labelKey(k, path+".matchLabels."+k, cilium)
		if msgs := validation.IsValidLabelValue(val); len(msgs) > 0 {
			v.add(path+".matchLabels."+k, "invalid label value %q: %s", val, strings.Join(msgs, "; "))
		}
	}
	for i, e := range ls.MatchExpressions {
		p := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		if e.Key == "" {
			v.add(p+".key", "key is required")
		} else {
			v.labelKey(e.Key, p+".key", cilium)
		}
		switch labels.Operator(e.Operator) {
		case labels.In, labels.NotIn:
			if len(e.Values) == 0 {
				v.add(p+".values", "operator %s needs at least one value", e.Operator)
			}
		case labels.Exists, labels.DoesNotExist:
			if len(e.Values) != 0 {
				v.add(p+".values", "operator %s takes no values", e.Operator)
			}
		default:
			v.add(p+".operator", "unknown operator %q (want In, NotIn, Exists or DoesNotExist)", e.Operator)
		}
	}
}

// labelKey checks a selector key. Cilium keys may carry a source prefix
// ("k8s:", "any:", "reserved:", ...), which is not part of the label key.
func (v *validator) labelKey(k, path string, cilium bool) {
	if cilium {
		if src, rest, ok := strings.Cut(k, ":"); ok && ciliumSources[src] {
			k = rest
		}
	}
	if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
		v.add(path, "invalid label key %q: %s", k, strings.Join(msgs, "; "))
	}
}

var ciliumSources = map[string]bool{"k8s": true, "any": true, "reserved": true, "cidr": true, "container": true, "unspec": true}

// port checks a numeric port.
func (v *validator) portNumber(p int64, path string, allowZero bool) {
	min := int64(1)
	if allowZero {
		min = 0
	}
	if p < min || p > 65535 {
		v.add(path, "port %d out of range %d-65535", p, min)
	}
}

// portName checks a named port as Kubernetes does (IANA service name).
func (v *validator) portName(name, path string) {
	if msgs := validation.IsValidPortName(name); len(msgs) > 0 {
		v.add(path, "invalid port name %q: %s", name, strings.Join(msgs, "; "))
	}
}

// prefix parses a CIDR. bare allows a plain address, taken as a host prefix,
// as Cilium's fromCIDR does.
func (v *validator) prefix(s, path string, bare bool) (netip.Prefix, bool) {
	p, err := ParsePrefix(s, bare)
	if err != nil {
		v.add(path, "%v", err)
		return netip.Prefix{}, false
	}
	return p, true
}

// ParsePrefix parses a CIDR such as "10.0.0.0/8" or "fd00::/64". With bare,
// a plain address is accepted as a host prefix. Host bits must be zero, as
// Kubernetes and Cilium normalise them; Rampart rejects rather than guesses.
func ParsePrefix(s string, bare bool) (netip.Prefix, error) {
	if bare && !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR or address %q", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: zones are not allowed", s)
	}
	return p.Masked(), nil
}

// except checks that each exception is a strict sub-prefix of cidr, as
// Kubernetes requires of ipBlock.except.
func (v *validator) except(cidr netip.Prefix, excepts []string, path string) {
	for i, e := range excepts {
		p := fmt.Sprintf("%s[%d]", path, i)
		ep, ok := v.prefix(e, p, false)
		if !ok || !cidr.IsValid() {
			continue
		}
		if ep.Addr().Is4() != cidr.Addr().Is4() || ep.Bits() <= cidr.Bits() || !cidr.Contains(ep.Addr()) {
			v.add(p, "except %s must be strictly within cidr %s", ep, cidr)
		}
	}
}

// regex compiles an anchored regular expression as Cilium's L7 rules use.
func (v *validator) regex(expr, path string) {
	if _, err := regexp.Compile(expr); err != nil {
		var re *syntax.Error
		if errors.As(err, &re) {
			v.add(path, "invalid regular expression %q: %s", expr, re.Code)
			return
		}
		v.add(path, "invalid regular expression %q: %v", expr, err)
	}
}

// ParsePort parses a port given as a string: a number, or a name.
func ParsePort(s string) (num int64, name string, err error) {
	if s == "" {
		return 0, "", nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, "", nil
	}
	return 0, s, nil
}
