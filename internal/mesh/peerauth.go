package mesh

import (
	"cmp"
	"fmt"
	"strconv"

	"github.com/rampartsec/rampart/internal/resource"
)

// MTLSMode is the effective mutual TLS mode of a workload port.
type MTLSMode string

// The effective modes. UNSET never is one: it inherits from the level above.
const (
	ModeStrict     MTLSMode = "STRICT"     // only mTLS connections are accepted
	ModePermissive MTLSMode = "PERMISSIVE" // mTLS and plaintext are accepted
	ModeDisable    MTLSMode = "DISABLE"    // mTLS is not used
)

// PeerLevel says which level of PeerAuthentication set the mode.
type PeerLevel string

// The levels, from the most specific. LevelDefault means no policy set a
// mode and Istio's default, PERMISSIVE, applies.
const (
	LevelPort      PeerLevel = "port"
	LevelWorkload  PeerLevel = "workload"
	LevelNamespace PeerLevel = "namespace"
	LevelMesh      PeerLevel = "mesh"
	LevelDefault   PeerLevel = "default"
)

// PeerDecision is the effective mTLS mode for one workload port and the
// policy that set it.
type PeerDecision struct {
	Mode   MTLSMode
	Level  PeerLevel
	Policy PolicyRef // zero for LevelDefault
}

func (d PeerDecision) String() string {
	if d.Level == LevelDefault {
		return string(d.Mode) + " (default: no PeerAuthentication sets a mode)"
	}
	return fmt.Sprintf("%s (%s-level PeerAuthentication %s)", d.Mode, d.Level, d.Policy)
}

// peerPolicy is a compiled PeerAuthentication.
type peerPolicy struct {
	ref      PolicyRef
	created  int64 // unix nanoseconds; the oldest policy of a level wins
	selector map[string]string
	mode     MTLSMode // "" for UNSET
	ports    map[uint16]MTLSMode
}

func compilePeer(o *resource.Object, pa *resource.PeerAuthentication, root string) (*peerPolicy, []string, resource.ErrorList) {
	c := &compiler{o: o}
	s := &pa.Spec
	p := &peerPolicy{
		ref:     PolicyRef{Namespace: o.Namespace, Name: o.Name},
		created: pa.CreationTimestamp.UnixNano(),
	}
	if s.Selector != nil && len(s.Selector.MatchLabels) > 0 {
		p.selector = s.Selector.MatchLabels
	}
	if s.MTLS != nil {
		p.mode = c.mode(s.MTLS.Mode, "spec.mtls.mode")
	}
	if len(s.PortLevelMTLS) > 0 && p.selector == nil {
		c.fail("spec.portLevelMtls", "portLevelMtls needs a workload selector")
	}
	for port, m := range s.PortLevelMTLS {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			c.fail("spec.portLevelMtls."+port, "invalid port %q (want 1-65535)", port)
			continue
		}
		if p.ports == nil {
			p.ports = map[uint16]MTLSMode{}
		}
		p.ports[uint16(n)] = c.mode(m.Mode, "spec.portLevelMtls."+port+".mode")
	}
	if len(c.errs) > 0 {
		return nil, nil, c.errs
	}
	var warns []string
	if o.Namespace == root && p.selector != nil {
		warns = append(warns, fmt.Sprintf("%s: a PeerAuthentication with a selector in the root namespace is ignored, as in Istio", o.Ref()))
	}
	return p, warns, nil
}

func (c *compiler) mode(m, path string) MTLSMode {
	switch m {
	case "", "UNSET":
		return ""
	case "STRICT":
		return ModeStrict
	case "PERMISSIVE":
		return ModePermissive
	case "DISABLE":
		return ModeDisable
	}
	c.fail(path, "unknown mode %q (want UNSET, DISABLE, PERMISSIVE or STRICT)", m)
	return ""
}

// peerResult is the composed PeerAuthentication of one workload.
type peerResult struct {
	base  PeerDecision
	ports map[uint16]PeerDecision
}

// older orders policies as Istio does within a level: the oldest
// creationTimestamp first, then by name.
func older(a, b *peerPolicy) int {
	return cmp.Or(cmp.Compare(a.created, b.created), cmp.Compare(a.ref.Name, b.ref.Name), cmp.Compare(a.ref.Namespace, b.ref.Namespace))
}

// composePeer follows Istio's ComposePeerAuthentication: one policy per
// level (the oldest), mesh then namespace then workload, each overriding
// the mode unless it is UNSET; port-level modes of the workload policy
// override for their port, UNSET taking the workload's effective mode.
// Root-namespace policies with a selector are not used.
func composePeer(policies []*peerPolicy, w *Workload, root string) peerResult {
	var mesh, ns, wl *peerPolicy
	pick := func(cur **peerPolicy, p *peerPolicy) {
		if *cur == nil || older(p, *cur) < 0 {
			*cur = p
		}
	}
	for _, p := range policies {
		switch {
		case p.selector == nil && p.ref.Namespace == root:
			pick(&mesh, p)
		case p.selector == nil && p.ref.Namespace == w.Namespace:
			pick(&ns, p)
		case p.selector != nil && p.ref.Namespace == w.Namespace && p.ref.Namespace != root && subsetOf(p.selector, w.Labels):
			pick(&wl, p)
		}
	}
	res := peerResult{base: PeerDecision{Mode: ModePermissive, Level: LevelDefault}}
	for _, l := range []struct {
		p     *peerPolicy
		level PeerLevel
	}{{mesh, LevelMesh}, {ns, LevelNamespace}, {wl, LevelWorkload}} {
		if l.p != nil && l.p.mode != "" {
			res.base = PeerDecision{Mode: l.p.mode, Level: l.level, Policy: l.p.ref}
		}
	}
	if wl != nil && len(wl.ports) > 0 {
		res.ports = make(map[uint16]PeerDecision, len(wl.ports))
		for port, m := range wl.ports {
			if m == "" {
				res.ports[port] = res.base
			} else {
				res.ports[port] = PeerDecision{Mode: m, Level: LevelPort, Policy: wl.ref}
			}
		}
	}
	return res
}

// mode returns the decision for a port.
func (r *peerResult) mode(port uint16) PeerDecision {
	if d, ok := r.ports[port]; ok {
		return d
	}
	return r.base
}
