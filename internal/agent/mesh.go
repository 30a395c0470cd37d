package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/ca"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/mesh"
	"github.com/rampartsec/rampart/internal/meshnode"
	"github.com/rampartsec/rampart/internal/policy"
	"github.com/rampartsec/rampart/internal/proxy"
	"github.com/rampartsec/rampart/internal/resource"
)

// MeshLabel on a namespace, with value "enabled", puts its workloads in
// the mesh, as istio.io/dataplane-mode=ambient does in Istio ambient.
const MeshLabel = "rampart.io/mesh"

// nodeMesh is the node's identity layer: the CA (the standalone node is
// its own control plane), the workloads' certificates, the proxy and what
// it enforces.
type nodeMesh struct {
	authority *ca.Authority
	certs     *meshnode.Certificates
	authz     meshnode.Authorizer
	proxy     *proxy.Proxy
	// members are the workloads the proxy serves now, by endpoint key.
	members map[endpoint.Key]proxy.Workload
	// byAddr resolves outbound destinations; replaced whole on reconcile.
	byAddr atomic.Pointer[map[netip.Addr]meshDest]
}

type meshDest struct {
	w    proxy.Workload
	mesh bool
}

// openMesh opens the CA under the state directory and starts the proxy.
func (n *Node) openMesh() error {
	auth, err := ca.Open(filepath.Join(n.cfg.StateDir, "ca"), ca.Options{})
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	certs, err := meshnode.NewCertificates(auth, auth.TrustDomain().Name(), n.log.With("component", "certs"))
	if err != nil {
		return err
	}
	m := &nodeMesh{authority: auth, certs: certs, members: map[endpoint.Key]proxy.Workload{}}
	m.authz.PathNormalization = n.cfg.PathNormalization
	empty := map[netip.Addr]meshDest{}
	m.byAddr.Store(&empty)
	m.proxy, err = proxy.New(proxy.Config{
		Certificates: certs,
		Resolver: proxy.ResolverFunc(func(ip netip.Addr) (proxy.Workload, bool) {
			d, ok := (*m.byAddr.Load())[ip.Unmap()]
			return d.w, ok && d.mesh
		}),
		Authorizer:  &m.authz,
		Recorder:    proxy.RecorderFunc(n.recordProxy),
		Registerer:  n.metrics.reg,
		Logger:      n.log.With("component", "proxy"),
		TrustDomain: auth.TrustDomain().Name(),
	})
	if err != nil {
		certs.Close()
		return fmt.Errorf("proxy: %w", err)
	}
	n.mesh = m
	return nil
}

func (m *nodeMesh) close() {
	if m == nil {
		return
	}
	m.proxy.Close()
	m.certs.Close()
}

// isMeshKind reports whether o is one of the Istio security kinds the
// mesh enforces.
func isMeshKind(o *resource.Object) bool {
	switch o.Kind {
	case "AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication":
		return strings.HasPrefix(o.APIVersion, "security.istio.io/")
	}
	return false
}

// checkMesh compiles the Istio policies among objs as the node will, so
// that apply refuses what the mesh engine rejects beyond the decoder's
// validation (for example a targetRef kind it cannot attach to).
func checkMesh(objs []*resource.Object) error {
	var istio []*resource.Object
	for _, o := range objs {
		if isMeshKind(o) {
			istio = append(istio, o)
		}
	}
	if len(istio) == 0 {
		return nil
	}
	_, err := mesh.NewEngine(istio, mesh.Options{})
	return err
}

// meshPlan is what one reconcile decided about the mesh.
type meshPlan struct {
	engine  *mesh.Engine
	members map[endpoint.Key]meshnode.Member
	// ids are the identities of mesh workloads, whose peers' egress
	// needs the tunnel port.
	ids map[identity.ID]bool
}

// planMesh decides which endpoints the proxy serves: those in a namespace
// labelled rampart.io/mesh=enabled, those a PeerAuthentication in STRICT or
// PERMISSIVE mode selects, and those with Cilium L7 rules (the proxy
// enforces rules.http, as Cilium's does).
func planMesh(objs []*resource.Object, d *desired) (*meshPlan, error) {
	var istio []*resource.Object
	for _, o := range objs {
		if isMeshKind(o) {
			istio = append(istio, o)
		}
	}
	eng, err := mesh.NewEngine(istio, mesh.Options{})
	if err != nil {
		return nil, fmt.Errorf("mesh policy: %w", err)
	}
	p := &meshPlan{engine: eng, members: map[endpoint.Key]meshnode.Member{}, ids: map[identity.ID]bool{}}
	for key, pe := range d.local {
		w := mesh.Workload{Namespace: pe.Namespace, Labels: pe.Labels, ServiceAccount: meshSA(pe.ServiceAccount)}
		inMesh := d.repo.NamespaceLabels(pe.Namespace)[MeshLabel] == "enabled"
		if pd := eng.PeerMode(w, 0); pd.Level != mesh.LevelDefault && (pd.Mode == mesh.ModeStrict || pd.Mode == mesh.ModePermissive) {
			inMesh = true
		}
		l7 := l7Ports(d.repo.Table(pe, policy.Ingress))
		if !inMesh && len(l7) == 0 {
			continue
		}
		mem := meshnode.Member{Labels: pe.Labels, ServiceAccount: pe.ServiceAccount, Mesh: inMesh, L7Ports: l7}
		for name, np := range pe.NamedPorts {
			if np.Proto == policy.TCP && meshnode.IsHTTPPortName(name) {
				mem.HTTPPorts = append(mem.HTTPPorts, np.Port)
			}
		}
		slices.Sort(mem.HTTPPorts)
		p.members[key] = mem
		if inMesh {
			p.ids[pe.Identity.ID] = true
		}
	}
	return p, nil
}

func meshSA(sa string) string {
	if sa == "" {
		return meshnode.DefaultServiceAccount
	}
	return sa
}

// l7Ports lists the ports that Cilium rules.http filter; 0 stands for a
// rule on every port or on a range too wide to list.
func l7Ports(t *policy.Table) []uint16 {
	var out []uint16
	for _, e := range t.Entries {
		if e.Action != policy.Redirect {
			continue
		}
		switch {
		case e.Proto == 0 || e.Hi < e.Lo || int(e.Hi)-int(e.Lo) > 64:
			out = append(out, 0)
		default:
			for p := int(e.Lo); p <= int(e.Hi); p++ {
				out = append(out, uint16(p))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tunnelTable adds to t the rows the kernel needs for mesh tunnels, which
// arrive on proxy.HBONEPort rather than on the application's port: a peer
// that t allows on some TCP port may also reach the tunnel port. The proxy
// then enforces the same table for the inner port, so the tunnel is not a
// way around it; deny rows for all ports still drop the tunnel in the
// kernel. At egress only tunnels to mesh identities are added.
func tunnelTable(t *policy.Table, meshIDs map[identity.ID]bool, ingress bool) *policy.Table {
	out := &policy.Table{Direction: t.Direction, Enforced: t.Enforced, Entries: slices.Clone(t.Entries)}
	if !t.Enforced {
		return out
	}
	seen := map[identity.ID]bool{}
	for _, e := range t.Entries {
		if e.CIDR != nil || e.Action == policy.Deny || (e.Proto != 0 && e.Proto != policy.TCP) || seen[e.Peer] {
			continue
		}
		if !ingress && e.Peer != policy.AnyPeer && !meshIDs[e.Peer] {
			continue
		}
		seen[e.Peer] = true
		out.Entries = append(out.Entries, policy.TableEntry{
			Peer: e.Peer, Proto: policy.TCP, Action: policy.Allow, Lo: proxy.HBONEPort, Hi: proxy.HBONEPort, Rule: e.Rule,
		})
	}
	return out
}

// syncMesh makes the proxy serve exactly the planned workloads: new members
// get a certificate, then the policy snapshot, then capture; leaving ones
// lose capture first. Callers hold n.mu.
func (n *Node) syncMesh(ctx context.Context, d *desired, plan *meshPlan) error {
	m := n.mesh
	want := map[endpoint.Key]proxy.Workload{}
	dests := map[netip.Addr]meshDest{}
	snap := meshnode.Snapshot{Mesh: plan.engine, Repo: d.repo, Workloads: map[string]meshnode.Member{}}
	for key, mem := range plan.members {
		ep, err := n.eps.Get(key)
		if err != nil {
			continue
		}
		pw := proxy.Workload{Namespace: ep.Spec.Namespace, Name: ep.Spec.Name, ServiceAccount: meshSA(ep.Spec.ServiceAccount), NetnsPath: ep.NetNSPath}
		for _, a := range []netip.Addr{ep.IPv4, ep.IPv6} {
			if a.IsValid() {
				pw.IPs = append(pw.IPs, a)
				dests[a] = meshDest{w: pw, mesh: mem.Mesh}
			}
		}
		want[key] = pw
		snap.Workloads[pw.Key()] = mem
	}
	var errs []error
	// Leaving workloads: capture off before the certificate goes.
	for key, pw := range m.members {
		if nw, ok := want[key]; ok && slices.Equal(nw.IPs, pw.IPs) && nw.NetnsPath == pw.NetnsPath && nw.ServiceAccount == pw.ServiceAccount {
			continue
		}
		if err := m.proxy.RemoveWorkload(pw.Namespace, pw.Name); err != nil {
			errs = append(errs, fmt.Errorf("proxy: remove %s: %w", pw.Key(), err))
		}
		m.certs.Release(pw.Namespace, pw.ServiceAccount)
		delete(m.members, key)
	}
	for key, pw := range want {
		if _, ok := m.members[key]; ok {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := m.certs.Acquire(actx, pw.Namespace, pw.ServiceAccount)
		cancel()
		if err != nil {
			errs = append(errs, err)
			delete(want, key)
			delete(snap.Workloads, pw.Key())
		}
	}
	m.authz.Update(snap)
	m.byAddr.Store(&dests)
	for key, pw := range want {
		if _, ok := m.members[key]; ok {
			continue
		}
		if err := m.proxy.AddWorkload(pw); err != nil {
			m.certs.Release(pw.Namespace, pw.ServiceAccount)
			errs = append(errs, fmt.Errorf("proxy: add %s: %w", pw.Key(), err))
			continue
		}
		m.members[key] = pw
		n.log.Info("workload in the mesh", "endpoint", key.String(), "identity", pw.Principal(m.authority.TrustDomain().Name()))
	}
	return errors.Join(errs...)
}

// recordProxy turns a proxy record into a flow record, so that `rampart
// observe` shows the proxy's decisions beside the kernel's.
func (n *Node) recordProxy(r proxy.Record) {
	verdict := "FORWARDED"
	if !r.Allowed {
		verdict = "DROPPED"
	}
	fl := api.Flow{
		Time:      r.Start,
		Layer:     "proxy",
		Protocol:  "TCP",
		Source:    api.FlowPeer{Addr: r.Source.Addr().String(), Port: r.Source.Port(), Name: r.SourceWorkload, Principal: r.SourcePrincipal},
		Dest:      api.FlowPeer{Addr: r.Destination.Addr().String(), Port: r.Destination.Port(), Name: r.DestinationWorkload, Principal: r.DestinationPrincipal},
		Verdict:   verdict,
		Policy:    r.Policy,
		Transport: string(r.Transport),
		Kind:      string(r.Kind),
		Method:    r.Method,
		Path:      r.Path,
		Status:    r.Status,
		Latency:   r.Duration,
		BytesIn:   r.BytesReceived,
		BytesOut:  r.BytesSent,
	}
	if !r.Allowed {
		fl.DropReason = r.Reason
		if r.Error != "" {
			fl.DropReason = r.Error
		}
	}
	// The destination's proxy reports at its workload's ingress, the
	// source's at its workload's egress, as the kernel's records do.
	if r.Reporter == proxy.ReporterDestination {
		fl.Endpoint, fl.Direction = r.DestinationWorkload, "ingress"
	} else {
		fl.Endpoint, fl.Direction = r.SourceWorkload, "egress"
	}
	n.metrics.flows.WithLabelValues(verdict).Inc()
	n.flows.Add(fl)
}
