package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
)

// RuleIDs gives every policy rule a stable number, which the datapath
// carries in policy entries, conntrack and flow events so that a flow can
// name the rule that decided it. Numbers are keyed by the rule's origin
// (policy and field path), so recompiling a policy keeps them.
type RuleIDs struct {
	mu     sync.Mutex
	byName map[string]uint32
	byID   map[uint32]policy.Origin
}

// NewRuleIDs returns an empty registry. ID 0 means "no rule".
func NewRuleIDs() *RuleIDs {
	return &RuleIDs{byName: map[string]uint32{}, byID: map[uint32]policy.Origin{}}
}

// ID returns the number of the rule with origin o.
func (r *RuleIDs) ID(o policy.Origin) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := o.String()
	if id, ok := r.byName[k]; ok {
		return id
	}
	id := uint32(len(r.byName) + 1)
	r.byName[k] = id
	r.byID[id] = o
	return id
}

// Origin returns the rule behind id.
func (r *RuleIDs) Origin(id uint32) (policy.Origin, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.byID[id]
	return o, ok
}

// Compiled is what one endpoint's policy becomes in the kernel.
type Compiled struct {
	Config datapath.EndpointConfig
	Policy []datapath.PolicyEntry
	CIDR   []datapath.CIDREntry
}

// Compile turns an endpoint's verdict tables into datapath rows: identity
// rows keyed by peer identity, and CIDR rows through per-direction CIDR
// classes. proxyPort is where redirect rows send traffic (0: L7 rules
// compile to plain allows, for nodes without a proxy).
func Compile(ep datapath.EndpointID, id identity.ID, in, eg *policy.Table, ids *RuleIDs, proxyPort uint16) (*Compiled, error) {
	c := &Compiled{Config: datapath.EndpointConfig{
		Identity:        datapath.Identity(id),
		IngressEnforced: in.Enforced,
		EgressEnforced:  eg.Enforced,
	}}
	for _, t := range []*policy.Table{in, eg} {
		dir := datapath.Ingress
		if t.Direction == policy.Egress {
			dir = datapath.Egress
		}
		var cidrRows []policy.TableEntry
		for _, ent := range t.Entries {
			if ent.CIDR != nil {
				cidrRows = append(cidrRows, ent)
				continue
			}
			peer := datapath.IdentityAny
			if ent.Peer != policy.AnyPeer {
				peer = datapath.Identity(ent.Peer)
			}
			rows, err := policyRows(ep, dir, peer, ent, ids, proxyPort)
			if err != nil {
				return nil, err
			}
			c.Policy = append(c.Policy, rows...)
		}
		prows, crows, err := compileCIDR(ep, dir, cidrRows, ids, proxyPort)
		if err != nil {
			return nil, err
		}
		c.Policy = append(c.Policy, prows...)
		c.CIDR = append(c.CIDR, crows...)
	}
	c.Policy = datapath.ResolvePrecedence(c.Policy)
	return c, nil
}

func policyRows(ep datapath.EndpointID, dir datapath.Direction, peer datapath.Identity, ent policy.TableEntry, ids *RuleIDs, proxyPort uint16) ([]datapath.PolicyEntry, error) {
	val := datapath.PolicyValue{RuleID: ids.ID(ent.Rule.Origin)}
	switch ent.Action {
	case policy.Deny:
		val.Verdict = datapath.VerdictDeny
	case policy.Redirect:
		val.Verdict = datapath.VerdictRedirect
		val.ProxyPort = proxyPort
		if proxyPort == 0 {
			val.Verdict = datapath.VerdictAllow
		}
	default:
		val.Verdict = datapath.VerdictAllow
	}
	var ports []datapath.PortPrefix
	switch {
	case ent.Proto == 0:
		ports = []datapath.PortPrefix{datapath.AnyPort}
	case ent.Proto.IsICMP():
		ports = []datapath.PortPrefix{datapath.ICMPType(uint8(ent.Lo))}
	default:
		var err error
		if ports, err = datapath.PortRange(ent.Lo, ent.Hi); err != nil {
			return nil, fmt.Errorf("%s: %w", ent.Rule.Origin, err)
		}
	}
	out := make([]datapath.PolicyEntry, 0, len(ports))
	for _, p := range ports {
		out = append(out, datapath.PolicyEntry{
			Key:   datapath.PolicyKey{Endpoint: ep, Direction: dir, Proto: uint8(ent.Proto), Peer: peer, Port: p},
			Value: val,
		})
	}
	return out, nil
}

// compileCIDR computes CIDR classes for one endpoint and direction. Every
// CIDR and except prefix is a boundary; the rules active for an address are
// those whose CIDR contains its longest matching boundary and none of whose
// excepts does, so each boundary prefix carries exactly the rule set of the
// addresses it is the longest match for. Distinct rule sets become classes;
// rows from Kubernetes ipBlock go to the "any" class, rows from Cilium CIDR
// rules (world only) to the "world" class.
func compileCIDR(ep datapath.EndpointID, dir datapath.Direction, rows []policy.TableEntry, ids *RuleIDs, proxyPort uint16) ([]datapath.PolicyEntry, []datapath.CIDREntry, error) {
	if len(rows) == 0 {
		return nil, nil, nil
	}
	var bounds []netip.Prefix
	for _, r := range rows {
		bounds = append(bounds, r.CIDR.CIDR)
		bounds = append(bounds, r.CIDR.Except...)
	}
	slices.SortFunc(bounds, comparePrefix)
	bounds = slices.Compact(bounds)

	classes := map[string]uint32{} // rule-set key -> class id
	var (
		policyOut []datapath.PolicyEntry
		cidrOut   []datapath.CIDREntry
	)
	class := func(active []int) (uint32, error) {
		if len(active) == 0 {
			return 0, nil
		}
		var kb strings.Builder
		for _, i := range active {
			kb.WriteString(strconv.Itoa(i))
			kb.WriteByte(',')
		}
		key := kb.String()
		if c, ok := classes[key]; ok {
			return c, nil
		}
		c := uint32(len(classes) + 1)
		classes[key] = c
		peer, err := datapath.CIDRClassPeer(c)
		if err != nil {
			return 0, err
		}
		for _, i := range active {
			prow, err := policyRows(ep, dir, peer, rows[i], ids, proxyPort)
			if err != nil {
				return 0, err
			}
			policyOut = append(policyOut, prow...)
		}
		return c, nil
	}
	for _, b := range bounds {
		var anyRules, worldRules []int
		for i, r := range rows {
			if !r.CIDR.CIDR.Contains(b.Addr()) || r.CIDR.CIDR.Bits() > b.Bits() {
				continue
			}
			if slices.ContainsFunc(r.CIDR.Except, func(e netip.Prefix) bool { return e.Contains(b.Addr()) && e.Bits() <= b.Bits() }) {
				continue
			}
			if r.CIDR.WorldOnly {
				worldRules = append(worldRules, i)
			} else {
				anyRules = append(anyRules, i)
			}
		}
		anyC, err := class(anyRules)
		if err != nil {
			return nil, nil, err
		}
		worldC, err := class(worldRules)
		if err != nil {
			return nil, nil, err
		}
		cidrOut = append(cidrOut, datapath.CIDREntry{Endpoint: ep, Direction: dir, Prefix: b, Class: datapath.CIDRClass{Any: anyC, World: worldC}})
	}
	return policyOut, cidrOut, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
