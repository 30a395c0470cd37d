package resource

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func (v *validator) workloadSelector(s *WorkloadSelector, path string) {
	if s != nil {
		v.labelMap(s.MatchLabels, path+".matchLabels")
	}
}

func (v *validator) targetRefs(sel *WorkloadSelector, one *PolicyTargetRef, many []PolicyTargetRef) {
	if sel != nil && (one != nil || len(many) > 0) {
		v.add("spec.selector", "selector cannot be combined with targetRef or targetRefs")
	}
	if one != nil && len(many) > 0 {
		v.add("spec.targetRef", "targetRef cannot be combined with targetRefs")
	}
	refs := many
	path := "spec.targetRefs"
	if one != nil {
		refs, path = []PolicyTargetRef{*one}, "spec.targetRef"
	}
	for i, r := range refs {
		p := path
		if one == nil {
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		if r.Kind == "" || r.Name == "" {
			v.add(p, "kind and name are required")
		}
		if r.Namespace != "" && r.Namespace != v.obj.Namespace {
			v.add(p+".namespace", "targetRef must be in the policy's namespace %q", v.obj.Namespace)
		}
	}
}

func validateAuthorizationPolicy(v *validator, p *AuthorizationPolicy) {
	s := &p.Spec
	v.workloadSelector(s.Selector, "spec.selector")
	v.targetRefs(s.Selector, s.TargetRef, s.TargetRefs)
	switch s.Action {
	case "", "ALLOW", "DENY", "AUDIT":
		if s.Provider != nil {
			v.add("spec.provider", "provider is only allowed with action CUSTOM")
		}
	case "CUSTOM":
		if s.Provider == nil || s.Provider.Name == "" {
			v.add("spec.provider", "action CUSTOM needs provider.name")
		}
	default:
		v.add("spec.action", "unknown action %q (want ALLOW, DENY, AUDIT or CUSTOM)", s.Action)
	}
	for i, r := range s.Rules {
		rp := fmt.Sprintf("spec.rules[%d]", i)
		for j, f := range r.From {
			fp := fmt.Sprintf("%s.from[%d].source", rp, j)
			if f.Source == nil {
				v.add(fp, "source is required")
				continue
			}
			v.authzSource(f.Source, fp)
		}
		for j, t := range r.To {
			tp := fmt.Sprintf("%s.to[%d].operation", rp, j)
			if t.Operation == nil {
				v.add(tp, "operation is required")
				continue
			}
			v.authzOperation(t.Operation, tp)
		}
		for j, c := range r.When {
			v.authzCondition(c, fmt.Sprintf("%s.when[%d]", rp, j))
		}
	}
}

func (v *validator) authzSource(s *AuthzSource, path string) {
	lists := []struct {
		name string
		vals []string
		ip   bool
	}{
		{"principals", s.Principals, false}, {"notPrincipals", s.NotPrincipals, false},
		{"requestPrincipals", s.RequestPrincipals, false}, {"notRequestPrincipals", s.NotRequestPrincipals, false},
		{"namespaces", s.Namespaces, false}, {"notNamespaces", s.NotNamespaces, false},
		{"ipBlocks", s.IPBlocks, true}, {"notIpBlocks", s.NotIPBlocks, true},
		{"remoteIpBlocks", s.RemoteIPBlocks, true}, {"notRemoteIpBlocks", s.NotRemoteIPBlocks, true},
		{"serviceAccounts", s.ServiceAccounts, false}, {"notServiceAccounts", s.NotServiceAccounts, false},
	}
	empty := true
	for _, l := range lists {
		if len(l.vals) > 0 {
			empty = false
		}
		for i, val := range l.vals {
			p := fmt.Sprintf("%s.%s[%d]", path, l.name, i)
			if l.ip {
				v.prefix(val, p, true)
			} else {
				v.istioWildcard(val, p)
			}
		}
	}
	if (len(s.ServiceAccounts) > 0 || len(s.NotServiceAccounts) > 0) && (len(s.Principals) > 0 || len(s.NotPrincipals) > 0 || len(s.Namespaces) > 0 || len(s.NotNamespaces) > 0) {
		v.add(path+".serviceAccounts", "serviceAccounts cannot be combined with principals or namespaces")
	}
	if empty {
		v.add(path, "source must set at least one field")
	}
}

func (v *validator) authzOperation(o *AuthzOperation, path string) {
	empty := len(o.Hosts)+len(o.NotHosts)+len(o.Ports)+len(o.NotPorts)+len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths) == 0
	if empty {
		v.add(path, "operation must set at least one field")
	}
	for name, vals := range map[string][]string{"hosts": o.Hosts, "notHosts": o.NotHosts, "methods": o.Methods, "notMethods": o.NotMethods, "paths": o.Paths, "notPaths": o.NotPaths} {
		for i, val := range vals {
			v.istioWildcard(val, fmt.Sprintf("%s.%s[%d]", path, name, i))
		}
	}
	for name, vals := range map[string][]string{"ports": o.Ports, "notPorts": o.NotPorts} {
		for i, val := range vals {
			p := fmt.Sprintf("%s.%s[%d]", path, name, i)
			if n, err := strconv.Atoi(val); err != nil || n < 0 || n > 65535 {
				v.add(p, "invalid port %q (want a number 0-65535)", val)
			}
		}
	}
}

// istioWildcard checks Istio's string match syntax: exact, "prefix*",
// "*suffix" or "*" (presence). Path templates ({*}, {**}) are not supported.
func (v *validator) istioWildcard(s, path string) {
	switch {
	case s == "":
		v.add(path, "empty value is not allowed")
	case s == "*":
	case strings.Count(s, "*") > 1 || (strings.Contains(s, "*") && !strings.HasPrefix(s, "*") && !strings.HasSuffix(s, "*")):
		v.add(path, "invalid match %q: '*' is only allowed once, at the start or the end", s)
	case strings.Contains(s, "{"):
		v.add(path, "path templates like %q are not supported by Rampart yet", s)
	}
}

// istioConditionKeys are the when keys Rampart evaluates; keys with [...]
// take a name.
var istioConditionKeys = map[string]bool{
	"source.ip": true, "remote.ip": true, "source.namespace": true, "source.principal": true,
	"request.auth.principal": true, "request.auth.audiences": true, "request.auth.presenter": true,
	"destination.ip": true, "destination.port": true, "connection.sni": true,
	"request.headers[]": true, "request.auth.claims[]": true,
}

func (v *validator) authzCondition(c AuthzCondition, path string) {
	key := c.Key
	if i := strings.IndexByte(key, '['); i >= 0 && strings.HasSuffix(key, "]") {
		if i+1 == len(key)-1 {
			v.add(path+".key", "condition key %q needs a name inside []", c.Key)
		}
		key = key[:i] + "[]"
	}
	if !istioConditionKeys[key] {
		v.add(path+".key", "unknown condition key %q", c.Key)
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		v.add(path, "values or notValues is required")
	}
	for name, vals := range map[string][]string{"values": c.Values, "notValues": c.NotValues} {
		for i, val := range vals {
			p := fmt.Sprintf("%s.%s[%d]", path, name, i)
			switch key {
			case "source.ip", "remote.ip", "destination.ip":
				v.prefix(val, p, true)
			case "destination.port":
				if n, err := strconv.Atoi(val); err != nil || n < 0 || n > 65535 {
					v.add(p, "invalid port %q", val)
				}
			}
		}
	}
}

var mtlsModes = map[string]bool{"": true, "UNSET": true, "DISABLE": true, "PERMISSIVE": true, "STRICT": true}

func validatePeerAuthentication(v *validator, p *PeerAuthentication) {
	s := &p.Spec
	v.workloadSelector(s.Selector, "spec.selector")
	if s.MTLS != nil && !mtlsModes[s.MTLS.Mode] {
		v.add("spec.mtls.mode", "unknown mode %q (want UNSET, DISABLE, PERMISSIVE or STRICT)", s.MTLS.Mode)
	}
	if len(s.PortLevelMTLS) > 0 && (s.Selector == nil || len(s.Selector.MatchLabels) == 0) {
		v.add("spec.portLevelMtls", "portLevelMtls needs a workload selector")
	}
	for port, m := range s.PortLevelMTLS {
		p := "spec.portLevelMtls." + port
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.add(p, "invalid port %q (want 1-65535)", port)
		}
		if !mtlsModes[m.Mode] {
			v.add(p+".mode", "unknown mode %q (want UNSET, DISABLE, PERMISSIVE or STRICT)", m.Mode)
		}
	}
}

func validateRequestAuthentication(v *validator, p *RequestAuthentication) {
	s := &p.Spec
	v.workloadSelector(s.Selector, "spec.selector")
	v.targetRefs(s.Selector, s.TargetRef, s.TargetRefs)
	issuers := map[string]bool{}
	for i, r := range s.JWTRules {
		rp := fmt.Sprintf("spec.jwtRules[%d]", i)
		if r.Issuer == "" {
			v.add(rp+".issuer", "issuer is required")
		} else if issuers[r.Issuer] {
			v.add(rp+".issuer", "issuer %q is listed twice", r.Issuer)
		}
		issuers[r.Issuer] = true
		if r.JWKSURI != "" {
			u, err := url.Parse(r.JWKSURI)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.add(rp+".jwksUri", "invalid jwksUri %q (want an http or https URL)", r.JWKSURI)
			}
		}
		if r.JWKS != "" {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(r.JWKS), &set); err != nil || len(set.Keys) == 0 {
				v.add(rp+".jwks", "jwks is not a JSON Web Key Set with keys")
			}
		}
		for j, h := range r.FromHeaders {
			if h.Name == "" {
				v.add(fmt.Sprintf("%s.fromHeaders[%d].name", rp, j), "name is required")
			}
		}
		for j, c := range r.OutputClaimToHeaders {
			if c.Header == "" || c.Claim == "" {
				v.add(fmt.Sprintf("%s.outputClaimToHeaders[%d]", rp, j), "header and claim are required")
			}
		}
		if r.Timeout != "" {
			if d, err := time.ParseDuration(r.Timeout); err != nil || d <= 0 {
				v.add(rp+".timeout", "invalid duration %q", r.Timeout)
			}
		}
	}
}
