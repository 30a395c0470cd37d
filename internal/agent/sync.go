package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/resource"
)

// AuditLabel on a namespace or a workload, with value "audit", makes
// would-be drops pass and be reported with verdict AUDIT.
const AuditLabel = "policy.rampart.io/mode"

// EndpointKind is the Kind of node endpoints in policy and trace output.
const EndpointKind = "Endpoint"

// desired is the state read from the store and what it resolved to.
type desired struct {
	objs     []*resource.Object // namespaces and policies
	rev      int64
	repo     *policy.Repository
	local    map[endpoint.Key]*policy.Endpoint
	policies int
	// byID and names let flows be named without scanning: endpoint id to
	// namespace/name, identity to the namespace/name of one endpoint.
	byID  map[datapath.EndpointID]string
	names map[datapath.Identity]string
	addrs map[netip.Addr]string
}

// loadDesired reads namespaces and policies from the store.
func (n *Node) loadDesired(ctx context.Context) ([]*resource.Object, int64, error) {
	objs, rev, err := n.store.ListObjects(ctx)
	if err != nil {
		return nil, 0, err
	}
	var out []*resource.Object
	for _, o := range objs {
		switch o.Kind {
		case "Namespace", "NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy":
			out = append(out, o)
		default:
			if isMeshKind(o) {
				out = append(out, o)
			}
		}
	}
	return out, rev, nil
}

// reconcile resolves policy for every endpoint of the node from the store's
// current state and programs the datapath. Callers hold n.mu.
//
// The order keeps policy closed while it changes: each endpoint's rows are
// synced (new rows added before stale ones are removed) before the ipcache
// maps any address to a new identity, so an address never carries an
// identity whose rows are missing.
func (n *Node) reconcile(ctx context.Context) error {
	start := time.Now()
	objs, rev, err := n.loadDesired(ctx)
	if err != nil {
		return fmt.Errorf("read desired state: %w", err)
	}
	repo, err := policy.Build(ctx, objs, n.alloc)
	if err != nil {
		return fmt.Errorf("resolve policy: %w", err)
	}
	d := &desired{objs: objs, rev: rev, repo: repo, local: map[endpoint.Key]*policy.Endpoint{},
		byID: map[datapath.EndpointID]string{}, names: map[datapath.Identity]string{}, addrs: map[netip.Addr]string{}}
	for _, o := range objs {
		if o.Kind != "Namespace" {
			d.policies++
		}
	}
	eps := n.eps.List()
	var gone []datapath.EndpointID
	for _, ep := range eps {
		if ep.State == endpoint.StateBroken || ep.State == endpoint.StateCreating {
			// Its interface is gone, replaced or unfinished: packets to
			// it must not be delivered to the one recorded earlier.
			gone = append(gone, datapath.EndpointID(ep.ID))
			continue
		}
		pe := toPolicyEndpoint(ep)
		if _, err := repo.UpsertEndpoint(ctx, pe); err != nil {
			return fmt.Errorf("endpoint %s: %w", ep.Key(), err)
		}
		d.local[ep.Key()] = pe
		d.byID[datapath.EndpointID(ep.ID)] = pe.Ref()
		d.names[datapath.Identity(pe.Identity.ID)] = pe.Ref()
		for _, a := range pe.IPs {
			d.addrs[a] = pe.Ref()
		}
	}
	plan, err := planMesh(objs, d)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range gone {
		if err := n.dp.StopLocalDelivery(id); err != nil {
			errs = append(errs, err)
		}
	}
	var ipc []datapath.IdentityEntry
	for _, ep := range eps {
		pe := d.local[ep.Key()]
		if pe == nil {
			continue
		}
		if err := n.program(ep, pe, repo, plan); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", ep.Key(), err))
			continue
		}
		for _, a := range pe.IPs {
			ipc = append(ipc, datapath.IdentityEntry{Prefix: netip.PrefixFrom(a, a.BitLen()), Identity: datapath.Identity(pe.Identity.ID)})
		}
	}
	ipc = append(ipc, hostIdentities(d.local)...)
	if err := n.syncIPCache(ipc); err != nil {
		errs = append(errs, err)
	}
	if err := n.syncMesh(ctx, d, plan); err != nil {
		errs = append(errs, err)
	}
	n.state = d
	n.metrics.endpoints.Set(float64(len(d.local)))
	n.metrics.syncs.Observe(time.Since(start).Seconds())
	if err := errors.Join(errs...); err != nil {
		n.metrics.syncErrs.Inc()
		return err
	}
	return nil
}

// program writes one endpoint's configuration and policy rows.
func (n *Node) program(ep endpoint.Endpoint, pe *policy.Endpoint, repo *policy.Repository, plan *meshPlan) error {
	id := datapath.EndpointID(ep.ID)
	in, eg := repo.Table(pe, policy.Ingress), repo.Table(pe, policy.Egress)
	if len(plan.ids) > 0 {
		if m, ok := plan.members[ep.Key()]; ok && m.Mesh {
			in = tunnelTable(in, plan.ids, true)
		}
		eg = tunnelTable(eg, plan.ids, false)
	}
	// L7 rules compile to plain allows: the proxy, not a kernel redirect,
	// filters their requests, through capture in the workload's namespace.
	c, err := Compile(id, pe.Identity.ID, in, eg, n.ids, 0)
	if err != nil {
		return err
	}
	cfg := c.Config
	cfg.IfIndex = ep.HostIfIndex
	// What delivering straight into the endpoint's namespace needs; a MAC
	// that is missing (or does not parse) leaves traffic to it routed.
	cfg.Addrs = pe.IPs
	cfg.MAC, _ = net.ParseMAC(ep.MAC)
	cfg.HostMAC, _ = net.ParseMAC(ep.HostMAC)
	cfg.Audit = ep.Spec.Labels[AuditLabel] == "audit" || repo.NamespaceLabels(ep.Spec.Namespace)[AuditLabel] == "audit"
	// Rows first, then the endpoint's defaults: when an endpoint becomes
	// enforced, its allows are already there.
	if err := n.dp.SyncPolicy(id, c.Policy); err != nil {
		return err
	}
	if err := n.dp.SyncCIDR(id, c.CIDR); err != nil {
		return err
	}
	return n.dp.SetEndpoint(id, cfg)
}

// syncIPCache makes the ipcache hold exactly want: new and changed rows
// first, then stale rows removed.
func (n *Node) syncIPCache(want []datapath.IdentityEntry) error {
	if err := n.dp.SetIdentities(want); err != nil {
		return fmt.Errorf("ipcache: %w", err)
	}
	have, err := n.dp.Identities()
	if err != nil {
		return fmt.Errorf("ipcache: %w", err)
	}
	keep := map[netip.Prefix]bool{}
	for _, e := range want {
		keep[e.Prefix] = true
	}
	for _, e := range have {
		if !keep[e.Prefix] {
			if err := n.dp.DeleteIdentity(e.Prefix); err != nil {
				return fmt.Errorf("ipcache: %w", err)
			}
		}
	}
	return nil
}

// toPolicyEndpoint describes a node endpoint to the policy engine.
func toPolicyEndpoint(ep endpoint.Endpoint) *policy.Endpoint {
	pe := &policy.Endpoint{
		Kind: EndpointKind, Namespace: ep.Spec.Namespace, Name: ep.Spec.Name,
		Labels: ep.Spec.Labels, ServiceAccount: ep.Spec.ServiceAccount,
		NamedPorts: map[string]policy.NamedPort{},
	}
	for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			pe.IPs = append(pe.IPs, a)
		}
	}
	for _, p := range ep.Spec.Ports {
		proto, err := policy.ParseProtocol(p.Protocol)
		if err != nil {
			proto = policy.TCP
		}
		np := policy.NamedPort{Port: p.Port, Proto: proto}
		pe.Ports = append(pe.Ports, np)
		if p.Name != "" {
			pe.NamedPorts[p.Name] = np
		}
	}
	return pe
}

// peerName names a flow's peer: the endpoint with that address, else an
// endpoint with that identity, a reserved identity's name, or the number.
func (d *desired) peerName(id datapath.Identity, addr netip.Addr) string {
	if d != nil {
		if name, ok := d.addrs[addr]; ok {
			return name
		}
		if name, ok := d.names[id]; ok {
			return name
		}
	}
	if name := identity.ReservedName(identity.ID(id)); name != "" {
		return name
	}
	return fmt.Sprintf("identity-%d", id)
}

func labelsOf(id *identity.Identity) []string {
	if id == nil {
		return nil
	}
	var out []string
	for _, l := range id.Labels.Sorted() {
		out = append(out, strings.TrimSuffix(l, "="))
	}
	return out
}
