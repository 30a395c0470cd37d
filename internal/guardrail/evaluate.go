package guardrail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// Guardrail decides admission requests. It is safe for concurrent use: it
// only reads its fields and the objects its Cluster returns.
type Guardrail struct {
	Cluster Cluster
	// ClusterScoped is the policy of cluster-scoped objects (ClusterRoles
	// and ClusterRoleBindings), which have no namespace to carry labels.
	ClusterScoped Policy
	// Log receives one line for each request a mode acted on; nil logs
	// nothing.
	Log *slog.Logger
}

// maxListed bounds how many findings a message or audit annotation lists;
// `rampart audit` lists them all.
const maxListed = 20

// ReviewBytes answers the AdmissionReview in body. It always returns a
// well-formed admission.k8s.io/v1 AdmissionReview: a request it cannot read
// is denied with code 400, an internal failure with code 500.
func (g *Guardrail) ReviewBytes(ctx context.Context, body []byte) []byte {
	req, err := decodeReview(body)
	if err != nil {
		return encodeReview(errorResponse("", err))
	}
	return encodeReview(g.Review(ctx, req))
}

// Review answers one admission request. A panic in the checks denies the
// request (fail closed) instead of killing the connection.
func (g *Guardrail) Review(ctx context.Context, req *admissionv1.AdmissionRequest) (resp *admissionv1.AdmissionResponse) {
	if req == nil {
		return denied("", http.StatusBadRequest, "AdmissionReview has no request")
	}
	defer func() {
		if p := recover(); p != nil {
			g.log().Error("panic while reviewing", "uid", req.UID, "panic", p, "stack", string(debug.Stack()))
			resp = denied(req.UID, http.StatusInternalServerError, fmt.Sprintf("internal error: %v", p))
		}
	}()
	resp, err := g.review(ctx, req)
	if err != nil {
		return errorResponse(req.UID, err)
	}
	return resp
}

// errorResponse denies with 400 for a request the webhook cannot read, the
// API server's code for an API error and 500 otherwise.
func errorResponse(uid types.UID, err error) *admissionv1.AdmissionResponse {
	var br *badReview
	if errors.As(err, &br) {
		if br.uid != "" {
			uid = br.uid
		}
		return denied(uid, http.StatusBadRequest, br.msg)
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code >= 400 {
		return denied(uid, st.Status().Code, err.Error())
	}
	return denied(uid, http.StatusInternalServerError, err.Error())
}

func (g *Guardrail) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}

func (g *Guardrail) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	allow := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return allow, nil // nothing new is admitted
	}
	k, err := lookupKind(req)
	if err != nil {
		return nil, err
	}
	cur, err := decodeObject(req.UID, "object", req.Object.Raw, req.Kind, k, req.Namespace)
	if err != nil {
		return nil, err
	}
	var old *resource.Object
	if req.Operation == admissionv1.Update {
		od, err := decodeObject(req.UID, "oldObject", req.OldObject.Raw, req.Kind, k, req.Namespace)
		if err != nil {
			return nil, err
		}
		old = od.obj
	}

	policy := g.ClusterScoped
	var objs []*resource.Object
	if k.namespaced {
		ns, err := g.Cluster.Namespace(ctx, req.Namespace)
		if err != nil {
			return nil, fmt.Errorf("read namespace %q: %w", req.Namespace, err)
		}
		policy = PolicyFromLabels(ns.Name, ns.Labels)
		if policy.Empty() {
			return allow, nil
		}
		objs = append(objs, &resource.Object{Source: cur.obj.Source, APIVersion: "v1", Kind: "Namespace", Name: ns.Name, Obj: ns})
		nps, err := g.Cluster.NetworkPolicies(ns.Name)
		if err != nil {
			return nil, fmt.Errorf("read NetworkPolicies of namespace %q: %w", ns.Name, err)
		}
		for _, np := range nps {
			objs = append(objs, &resource.Object{Source: cur.obj.Source, APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: np.Namespace, Name: np.Name, Obj: np})
		}
	} else if policy.Empty() {
		return allow, nil
	}
	objs = append(objs, cur.obj)

	rep := posture.Audit(objs, posture.Options{})
	ref := posture.ObjectRef{Kind: cur.obj.Kind, Namespace: cur.obj.Namespace, Name: cur.obj.Name}
	var findings []posture.Finding
	for _, f := range rep.Findings {
		if f.Object == ref {
			findings = append(findings, f)
		}
	}
	var risk *posture.WorkloadRisk
	for i := range rep.Workloads {
		if rep.Workloads[i].Object == ref {
			risk = &rep.Workloads[i]
		}
	}
	d := decision{subject: cur.obj.Ref(), policy: policy, risk: risk, update: old != nil}
	if old != nil {
		d.changes = posture.Diff(old, cur.obj)
	}
	for _, m := range Modes() {
		if l, ok := policy.Levels[m]; ok {
			if v := l.Check(findings, risk); v != nil {
				d.violations = append(d.violations, modeViolation{m, v})
			}
		}
	}
	resp := d.response(req.UID)
	for _, inv := range policy.Invalid {
		resp.Warnings = append(resp.Warnings, "rampart guardrail: invalid label "+inv)
	}
	for _, u := range cur.unknown {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("rampart guardrail: %s: %s, not checked", d.subject, u))
	}
	if len(d.violations) > 0 {
		g.log().Info("review", "uid", req.UID, "operation", req.Operation, "object", d.subject,
			"allowed", resp.Allowed, "policy", policy.String(), "findings", len(findings), "changes", len(d.changes))
	}
	return resp, nil
}

// modeViolation is a violation found under one mode.
type modeViolation struct {
	mode Mode
	*Violation
}

// decision is everything the response is built from.
type decision struct {
	subject    string // "Deployment/shop/web"
	policy     Policy
	risk       *posture.WorkloadRisk
	update     bool
	changes    []posture.FieldChange
	violations []modeViolation
}

// response turns the violations into the answer: an enforce violation
// denies, unless the request is an update that changes no security-relevant
// field (the object was admitted before the namespace was labelled, and a
// controller only touches its metadata); a warn violation adds warnings; an
// audit violation adds audit annotations.
func (d *decision) response(uid types.UID) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: uid, Allowed: true}
	var deny []string
	seen := map[string]bool{}
	warn := func(s string) {
		if !seen[s] {
			seen[s] = true
			resp.Warnings = append(resp.Warnings, s)
		}
	}
	for _, v := range d.violations {
		switch {
		case v.mode == Enforce && d.update && len(d.changes) == 0:
			warn(fmt.Sprintf("rampart guardrail: %s, allowed because this update changes no security-relevant field", d.headline(v)))
			d.warnFindings(v, warn)
		case v.mode == Enforce:
			deny = append(deny, d.headline(v)+":")
			for i, f := range v.Findings {
				if i == maxListed {
					deny = append(deny, fmt.Sprintf("- ... and %d more (rampart audit lists them all)", len(v.Findings)-maxListed))
					break
				}
				deny = append(deny, fmt.Sprintf("- %s %s: %s. Fix: %s", f.ID, f.Field, f.Message, f.Remediation))
			}
		case v.mode == Warn:
			warn("rampart guardrail: " + d.headline(v))
			d.warnFindings(v, warn)
		case v.mode == Audit:
			if resp.AuditAnnotations == nil {
				resp.AuditAnnotations = map[string]string{}
			}
			resp.AuditAnnotations["audit-level"] = v.Level.String()
			resp.AuditAnnotations["audit-findings"] = findingList(v.Findings)
			if d.risk != nil {
				resp.AuditAnnotations["audit-score"] = strconv.FormatFloat(d.risk.Score, 'f', 2, 64)
			}
			if len(d.changes) > 0 {
				resp.AuditAnnotations["audit-changes"] = changeList(d.changes, "; ")
			}
		}
	}
	if len(d.violations) > 0 && len(d.changes) > 0 {
		if len(deny) > 0 {
			deny = append(deny, "This update changes:")
			for _, c := range d.changes {
				deny = append(deny, "- "+c.String())
			}
		}
		if len(resp.Warnings) > 0 {
			warn("rampart guardrail: this update changes " + changeList(d.changes, "; "))
		}
	}
	if len(deny) > 0 {
		resp.Allowed = false
		resp.Result = &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusForbidden,
			Reason:  metav1.StatusReasonForbidden,
			Message: "rampart guardrail: " + strings.Join(deny, "\n"),
		}
	}
	return resp
}

// headline says what failed where: `Deployment/shop/web violates level
// "restricted" (label guardrail.rampart.io/enforce of namespace "shop"),
// 2 findings`.
func (d *decision) headline(v modeViolation) string {
	var b strings.Builder
	if v.Level.Name == "" {
		fmt.Fprintf(&b, "%s has risk score %.2f (%s), at or above %s", d.subject, v.Risk.Score, v.Risk.Band, v.Level)
	} else {
		fmt.Fprintf(&b, "%s violates level %q", d.subject, v.Level.Name)
		if d.risk != nil {
			fmt.Fprintf(&b, " (risk score %.2f, %s)", d.risk.Score, d.risk.Band)
		}
	}
	fmt.Fprintf(&b, " set by %s", d.policy.origin(v.mode))
	n := len(v.Findings)
	fmt.Fprintf(&b, ", %d finding%s", n, map[bool]string{true: "", false: "s"}[n == 1])
	return b.String()
}

// warnFindings adds one short warning per finding: kubectl prints each on
// its own line.
func (d *decision) warnFindings(v modeViolation, warn func(string)) {
	for i, f := range v.Findings {
		if i == maxListed {
			warn(fmt.Sprintf("rampart guardrail: ... and %d more findings (rampart audit lists them all)", len(v.Findings)-maxListed))
			return
		}
		warn(fmt.Sprintf("rampart guardrail: %s %s: %s", f.ID, f.Field, f.Message))
	}
}

// origin names the label or flag that set the mode's level.
func (p Policy) origin(m Mode) string {
	l := p.Levels[m]
	if p.Namespace == "" {
		return fmt.Sprintf("--cluster-scoped-mode %s=%s", m, l)
	}
	return fmt.Sprintf("label %s=%s of namespace %q", m.Label(), l, p.Namespace)
}

func findingList(fs []posture.Finding) string {
	var parts []string
	for i, f := range fs {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("... and %d more", len(fs)-maxListed))
			break
		}
		parts = append(parts, f.ID+" "+f.Field)
	}
	return strings.Join(parts, "; ")
}

func changeList(cs []posture.FieldChange, sep string) string {
	var parts []string
	for i, c := range cs {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("... and %d more", len(cs)-maxListed))
			break
		}
		parts = append(parts, c.String())
	}
	return strings.Join(parts, sep)
}
