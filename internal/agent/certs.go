package agent

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/api"
	"github.com/rampartsec/rampart/internal/ca"
)

// caStatus describes the CA and the certificate each mesh workload holds
// now. Callers hold n.mu.
func (n *Node) caStatus() api.CAStatus {
	m := n.mesh
	st := api.CAStatus{Status: m.authority.Status()}
	for _, pw := range m.members {
		src, ok := m.certs.Source(pw.Namespace, pw.ServiceAccount)
		if !ok {
			continue
		}
		svid := src.SVID()
		if svid == nil || len(svid.Chain) == 0 {
			continue
		}
		wc := api.WorkloadCert{Namespace: pw.Namespace, Name: pw.Name, LeafInfo: ca.DescribeLeaf(svid.Chain[0])}
		var b strings.Builder
		for _, c := range svid.Chain {
			pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		wc.Chain = b.String()
		st.Workloads = append(st.Workloads, wc)
	}
	slices.SortFunc(st.Workloads, func(a, b api.WorkloadCert) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return st
}

func (n *Node) handleCA(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	st := n.caStatus()
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

// handleRotateCA takes one step of a root rotation. Workloads pick up the
// new bundle as their certificates renew (docs/ca.md).
func (n *Node) handleRotateCA(w http.ResponseWriter, r *http.Request) {
	var req api.RotateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode request: %w", err))
		return
	}
	a := n.mesh.authority
	var err error
	switch req.Step {
	case "start":
		_, err = a.Rotate()
	case "promote":
		_, err = a.Promote()
	case "finish":
		_, err = a.FinishRotation()
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("unknown rotation step %q (want start, promote or finish)", req.Step))
		return
	}
	if err != nil {
		writeError(w, http.StatusConflict, err)
		return
	}
	n.log.Info("root rotation", "step", req.Step, "phase", a.Status().Phase)
	n.mu.Lock()
	st := n.caStatus()
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}
