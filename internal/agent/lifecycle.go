package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/policy"
)

// restore re-adopts the endpoints of a previous run, rewrites the datapath
// from the store's state and re-attaches programs (an atomic swap of
// already-attached programs). Until it is done the pinned programs and maps
// of the previous run keep enforcing.
func (n *Node) restore(ctx context.Context) error {
	rep, err := n.eps.Restore(ctx)
	if err != nil {
		return fmt.Errorf("restore endpoints: %w", err)
	}
	for _, b := range rep.Broken {
		n.log.Warn("endpoint is broken; `rampart stop` removes it", "endpoint", b.Key.String(), "problem", b.Problem)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.reconcile(ctx); err != nil {
		return err
	}
	for _, ep := range n.eps.List() {
		if _, ok := n.state.local[ep.Key()]; !ok {
			continue
		}
		if err := n.dp.Attach(datapath.EndpointID(ep.ID), ep.HostIfIndex); err != nil {
			return fmt.Errorf("re-attach %s: %w", ep.Key(), err)
		}
	}
	n.log.Info("restored", "endpoints", len(n.state.local), "running", len(rep.Running), "exited", len(rep.Exited), "broken", len(rep.Broken))
	return nil
}

// watchStore reconciles whenever desired state changes in the store, for
// writers other than this node's API (another node sharing an external
// etcd, or an operator).
func (n *Node) watchStore(ctx context.Context) {
	n.mu.Lock()
	from := n.state.rev + 1
	n.mu.Unlock()
	for ev := range n.store.WatchObjects(ctx, from) {
		if ev.Err != nil {
			n.log.Warn("store watch", "err", ev.Err)
			continue
		}
		n.mu.Lock()
		if ev.Revision > n.state.rev {
			if err := n.reconcile(ctx); err != nil {
				n.log.Error("reconcile", "err", err)
			}
		}
		n.mu.Unlock()
	}
}

// run creates an endpoint, programs its policy, attaches the datapath and
// only then starts the workload, so it never runs unenforced.
func (n *Node) run(ctx context.Context, req api.RunRequest) (endpoint.Endpoint, error) {
	spec := endpoint.Spec{Name: req.Name, Namespace: req.Namespace, Labels: req.Labels, ServiceAccount: req.ServiceAccount}
	for _, p := range req.Ports {
		spec.Ports = append(spec.Ports, endpoint.Port{Name: p.Name, Port: p.Port, Protocol: p.Protocol})
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ep, err := n.eps.Create(ctx, spec)
	if err != nil {
		return ep, err
	}
	undo := func(cause error) (endpoint.Endpoint, error) {
		n.dp.DeleteEndpoint(datapath.EndpointID(ep.ID))
		n.eps.Delete(context.WithoutCancel(ctx), ep.Key())
		n.reconcile(context.WithoutCancel(ctx))
		return endpoint.Endpoint{}, cause
	}
	if err := n.reconcile(ctx); err != nil {
		return undo(err)
	}
	if err := n.dp.Attach(datapath.EndpointID(ep.ID), ep.HostIfIndex); err != nil {
		return undo(err)
	}
	ep, err = n.eps.Start(ctx, ep, endpoint.Command{Args: req.Command})
	if err != nil {
		return undo(err)
	}
	n.log.Info("endpoint started", "endpoint", ep.Key().String(), "id", ep.ID, "ipv4", ep.IPv4, "ipv6", ep.IPv6, "pid", ep.Process.PID)
	return ep, nil
}

// stop removes an endpoint: process, network, datapath state.
func (n *Node) stop(ctx context.Context, key endpoint.Key) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep, err := n.eps.Get(key)
	if err != nil {
		return err
	}
	if err := n.eps.Delete(ctx, key); err != nil {
		return err
	}
	n.dp.Detach(datapath.EndpointID(ep.ID))
	n.dp.FlushConntrack(datapath.EndpointID(ep.ID), datapath.CTFilter{})
	if err := n.dp.DeleteEndpoint(datapath.EndpointID(ep.ID)); err != nil {
		n.log.Warn("delete endpoint from datapath", "endpoint", key.String(), "err", err)
	}
	return n.reconcile(ctx)
}

// readFlows turns datapath events into flow records until ctx ends.
func (n *Node) readFlows(ctx context.Context) {
	rd, err := n.dp.NewFlowReader()
	if err != nil {
		n.log.Error("flow reader", "err", err)
		return
	}
	go func() {
		<-ctx.Done()
		rd.Close()
	}()
	for {
		f, err := rd.Read()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("flow reader", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return
		}
		n.mu.Lock()
		fl := n.flowRecord(f)
		n.mu.Unlock()
		n.metrics.flows.WithLabelValues(fl.Verdict).Inc()
		n.flows.Add(fl)
	}
}

// flowRecord describes a datapath flow event in the user's terms.
func (n *Node) flowRecord(f datapath.Flow) api.Flow {
	fl := api.Flow{
		Time:      f.Time,
		Direction: f.Direction.String(),
		Protocol:  policy.Protocol(f.Proto).String(),
		Source:    api.FlowPeer{Addr: f.Src.String(), Port: f.SrcPort, Identity: uint32(f.SrcIdentity), Name: n.state.peerName(f.SrcIdentity, f.Src)},
		Dest:      api.FlowPeer{Addr: f.Dst.String(), Port: f.DstPort, Identity: uint32(f.DstIdentity), Name: n.state.peerName(f.DstIdentity, f.Dst)},
		Bytes:     f.Length,
	}
	fl.Endpoint = n.state.byID[f.Endpoint]
	if f.Proto == 1 || f.Proto == 58 {
		t := f.ICMPType()
		fl.ICMPType = &t
		fl.Source.Port, fl.Dest.Port = 0, 0
	}
	switch f.Verdict {
	case datapath.FlowDropped:
		fl.Verdict = "DROPPED"
		fl.DropReason = f.Reason.String()
	case datapath.FlowAudit:
		fl.Verdict = "AUDIT"
		fl.DropReason = f.Reason.String()
	default:
		fl.Verdict = "FORWARDED"
	}
	if o, ok := n.ids.Origin(f.RuleID); ok {
		fl.Policy = o.String()
	}
	return fl
}
