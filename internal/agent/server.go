package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/datapath"
	"github.com/rampartsec/rampart/internal/endpoint"
	"github.com/rampartsec/rampart/internal/resource"
	"github.com/rampartsec/rampart/internal/store"
)

// maxBody bounds request bodies; manifests larger than this belong in
// several applies.
const maxBody = 32 << 20

func (n *Node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("POST /v1/apply", n.handleApply)
	mux.HandleFunc("POST /v1/delete", n.handleDelete)
	mux.HandleFunc("GET /v1/objects", n.handleObjects)
	mux.HandleFunc("GET /v1/endpoints", n.handleEndpoints)
	mux.HandleFunc("POST /v1/endpoints", n.handleRun)
	mux.HandleFunc("DELETE /v1/endpoints/{ns}/{name}", n.handleStop)
	mux.HandleFunc("GET /v1/endpoints/{ns}/{name}/logs", n.handleLogs)
	mux.HandleFunc("GET /v1/flows", n.handleFlows)
	mux.HandleFunc("GET /v1/ca", n.handleCA)
	mux.HandleFunc("POST /v1/ca/rotate", n.handleRotateCA)
	return http.MaxBytesHandler(mux, maxBody)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, endpoint.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, endpoint.ErrExists), errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, endpoint.ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	st := api.Status{
		Version: Version, Uptime: time.Since(n.started).Round(time.Second), StateDir: n.cfg.StateDir,
		Store: "embedded etcd", PinDir: PinDir(n.cfg.StateDir), MetricsAddr: n.cfg.MetricsAddr,
		Endpoints: len(n.state.local), Policies: n.state.policies, Identities: len(n.state.repo.Identities()),
	}
	n.mu.Unlock()
	if len(n.cfg.EtcdEndpoints) > 0 {
		st.Store = "etcd " + strings.Join(n.cfg.EtcdEndpoints, ",")
	}
	for _, p := range []netip.Prefix{n.cfg.PodCIDR4, n.cfg.PodCIDR6} {
		if p.IsValid() {
			st.PodCIDRs = append(st.PodCIDRs, p.String())
		}
	}
	st.FlowsSeen, st.FlowsDropped = n.flows.Counts()
	writeJSON(w, http.StatusOK, st)
}

// decodeInputs decodes an apply request's manifests; on problems it answers
// 422 with every one of them.
func decodeInputs(w http.ResponseWriter, r *http.Request) ([]*resource.Object, bool, bool) {
	var req api.ApplyRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return nil, false, false
	}
	inputs := make([]resource.Input, len(req.Inputs))
	for i, in := range req.Inputs {
		inputs[i] = resource.Input{Name: in.Name, Data: in.Data}
	}
	objs, err := resource.Decode(inputs)
	if err == nil && !req.Delete {
		// Istio policies the mesh cannot enforce are refused here, with
		// their file and line, rather than stored and then failing every
		// reconciliation.
		err = checkMesh(objs)
	}
	var list resource.ErrorList
	if errors.As(err, &list) {
		body := api.Error{Error: fmt.Sprintf("%d error(s) in the input; nothing was applied", len(list))}
		for _, e := range list {
			body.Fields = append(body.Fields, api.FieldError{File: e.File, Line: e.Line, Path: e.Path, Msg: e.Msg})
		}
		writeJSON(w, http.StatusUnprocessableEntity, body)
		return nil, false, false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return nil, false, false
	}
	if len(objs) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("no objects in the input"))
		return nil, false, false
	}
	return objs, req.Delete, true
}

func (n *Node) handleApply(w http.ResponseWriter, r *http.Request) {
	objs, del, ok := decodeInputs(w, r)
	if !ok {
		return
	}
	n.commit(w, r, objs, del)
}

// commit writes objs to the store in one transaction (or deletes them) and
// reconciles before answering, so that when apply returns the datapath
// enforces the new state.
func (n *Node) commit(w http.ResponseWriter, r *http.Request, objs []*resource.Object, del bool) {
	ctx := r.Context()
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if del {
		err = n.store.DeleteObjects(ctx, objs)
	} else {
		err = n.store.PutObjects(ctx, objs)
	}
	if err != nil {
		writeError(w, statusOf(err), fmt.Errorf("store: %w", err))
		return
	}
	resp := api.ApplyResponse{}
	verb := "configured"
	if del {
		verb = "deleted"
	}
	for _, o := range objs {
		resp.Applied = append(resp.Applied, o.Ref()+" "+verb)
	}
	// The store has changed: finish programming the datapath even if the
	// client goes away.
	if err := n.reconcile(context.WithoutCancel(ctx)); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("stored, but programming the datapath failed: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) {
	var req api.DeleteRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return
	}
	n.mu.Lock()
	all, _, err := n.store.ListObjects(r.Context())
	n.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	var objs []*resource.Object
	for _, ref := range req.Refs {
		o := findObject(all, ref)
		if o == nil {
			writeError(w, http.StatusNotFound, fmt.Errorf("%s %s not found", ref.Kind, joinNS(ref.Namespace, ref.Name)))
			return
		}
		objs = append(objs, o)
	}
	n.commit(w, r, objs, true)
}

func joinNS(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func findObject(all []*resource.Object, ref api.ObjectRef) *resource.Object {
	for _, o := range all {
		if kindMatches(ref.Kind, o.Kind) && o.Name == ref.Name && (o.Namespace == ref.Namespace || (ref.Namespace == "" && o.Namespace == "default")) {
			return o
		}
	}
	return nil
}

func (n *Node) handleObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	all, _, err := n.store.ListObjects(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	kind := q.Get("kind")
	out := api.ObjectList{Items: []json.RawMessage{}}
	for _, o := range all {
		if kind != "" && !kindMatches(kind, o.Kind) {
			continue
		}
		if ns := q.Get("namespace"); ns != "" && o.Namespace != ns {
			continue
		}
		if name := q.Get("name"); name != "" && o.Name != name {
			continue
		}
		data, err := json.Marshal(o.Obj)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		out.Items = append(out.Items, data)
	}
	writeJSON(w, http.StatusOK, out)
}

// kindMatches accepts a kind as kubectl users write it: Kind, lower case,
// plural, or a short name.
func kindMatches(want, kind string) bool {
	w, k := strings.ToLower(want), strings.ToLower(kind)
	short := map[string]string{"netpol": "networkpolicy", "cnp": "ciliumnetworkpolicy", "ccnp": "ciliumclusterwidenetworkpolicy", "ns": "namespace", "po": "pod"}
	if s, ok := short[w]; ok {
		w = s
	}
	return w == k || w == k+"s" || strings.TrimSuffix(w, "ies")+"y" == k || strings.TrimSuffix(w, "es") == k
}

func (n *Node) endpointInfo(ep endpoint.Endpoint, counters []datapath.Counter) api.Endpoint {
	out := api.Endpoint{
		ID: ep.ID, Namespace: ep.Spec.Namespace, Name: ep.Spec.Name, Labels: ep.Spec.Labels,
		Interface: ep.HostIfName, NetNS: ep.NetNSPath, State: string(ep.State),
	}
	if ep.IPv4.IsValid() {
		out.IPv4 = ep.IPv4.String()
	}
	if ep.IPv6.IsValid() {
		out.IPv6 = ep.IPv6.String()
	}
	if ep.Process != nil && ep.State == endpoint.StateRunning {
		out.PID = ep.Process.PID
	}
	if pe := n.state.local[ep.Key()]; pe != nil && pe.Identity != nil {
		out.Identity = uint32(pe.Identity.ID)
		out.IdentityLabels = labelsOf(pe.Identity)
	}
	if cfg, err := n.dp.Endpoint(datapath.EndpointID(ep.ID)); err == nil {
		out.IngressEnforced, out.EgressEnforced, out.Audit = cfg.IngressEnforced, cfg.EgressEnforced, cfg.Audit
	}
	for _, c := range counters {
		if c.Endpoint != datapath.EndpointID(ep.ID) {
			continue
		}
		dropped := c.Verdict == datapath.FlowDropped
		switch {
		case c.Direction == datapath.Ingress && dropped:
			out.Counters.IngressDropped += c.Packets
		case c.Direction == datapath.Ingress:
			out.Counters.IngressForwarded += c.Packets
		case dropped:
			out.Counters.EgressDropped += c.Packets
		default:
			out.Counters.EgressForwarded += c.Packets
		}
	}
	return out
}

func (n *Node) handleEndpoints(w http.ResponseWriter, r *http.Request) {
	counters, _ := n.dp.Counters()
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []api.Endpoint{}
	for _, ep := range n.eps.List() {
		out = append(out, n.endpointInfo(ep, counters))
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleRun(w http.ResponseWriter, r *http.Request) {
	var req api.RunRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return
	}
	if len(req.Command) == 0 {
		writeError(w, http.StatusBadRequest, errors.New("no command to run"))
		return
	}
	ep, err := n.run(r.Context(), req)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	counters, _ := n.dp.Counters()
	n.mu.Lock()
	info := n.endpointInfo(ep, counters)
	n.mu.Unlock()
	writeJSON(w, http.StatusCreated, info)
}

func (n *Node) handleStop(w http.ResponseWriter, r *http.Request) {
	key := endpoint.Key{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	if err := n.stop(r.Context(), key); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (n *Node) handleLogs(w http.ResponseWriter, r *http.Request) {
	key := endpoint.Key{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}
	rc, err := n.eps.Logs(key)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain")
	follow := r.URL.Query().Get("follow") == "true"
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		nr, err := rc.Read(buf)
		if nr > 0 {
			if _, werr := w.Write(buf[:nr]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err == io.EOF && follow {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(200 * time.Millisecond):
				continue
			}
		}
		if err != nil {
			return
		}
	}
}

func (n *Node) handleFlows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := api.FlowFilterSpec{Verdict: q.Get("verdict"), Namespace: q.Get("namespace"), Pod: q.Get("pod")}
	last, _ := strconv.Atoi(q.Get("last"))
	follow := q.Get("follow") == "true"
	var (
		sub    <-chan api.Flow
		cancel = func() {}
	)
	if follow {
		sub, cancel = n.flows.Subscribe()
	}
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, fl := range n.flows.Snapshot(f, last) {
		if enc.Encode(fl) != nil {
			return
		}
	}
	fls, _ := w.(http.Flusher)
	if fls != nil {
		fls.Flush()
	}
	if !follow {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case fl, ok := <-sub:
			if !ok {
				return
			}
			if !Match(f, fl) {
				continue
			}
			if enc.Encode(fl) != nil {
				return
			}
			if fls != nil {
				fls.Flush()
			}
		}
	}
}
