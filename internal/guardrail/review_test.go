package guardrail_test

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestReview runs crafted AdmissionReviews through the guardrail: each mode
// and level, updates, RBAC, and requests it must refuse to read.
func TestReview(t *testing.T) {
	type want struct {
		allowed  bool
		code     int32    // status code of a denial
		uid      string   // response UID ("" when the request's is unknown)
		msg      []string // substrings of the denial message
		warnings []string // substrings, each of some warning
		noWarn   bool     // no warning at all
		audit    map[string]string
	}
	podOK := newPod("enforcing", "ok")
	podBad := newPod("enforcing", "bad", privileged)
	withUnknown := strings.Replace(string(mustReview(t, admissionv1.Create, newPod("warned", "future"), nil)),
		`"containers":[`, `"futureIsolation":"strong","containers":[`, 1)
	tests := []struct {
		name string
		body []byte
		// clusterScoped is the --cluster-scoped-mode; "" for none.
		clusterScoped string
		want          want
	}{
		{
			name: "enforce denies a privileged pod with findings and fixes",
			body: mustReview(t, admissionv1.Create, podBad, nil),
			want: want{code: 403, uid: "uid-CREATE-bad", msg: []string{
				`Pod/enforcing/bad violates level "restricted"`,
				"label guardrail.rampart.io/enforce=restricted of namespace \"enforcing\"",
				"- pss:privileged spec.containers[0].securityContext.privileged: ",
				"Fix: ",
			}},
		},
		{
			name: "enforce allows a hardened pod without warnings",
			body: mustReview(t, admissionv1.Create, podOK, nil),
			want: want{allowed: true, uid: "uid-CREATE-ok", noWarn: true},
		},
		{
			name: "enforce denies a privileged deployment",
			body: mustReview(t, admissionv1.Create, newDeployment("enforcing", "web", privileged), nil),
			want: want{code: 403, msg: []string{"Deployment/enforcing/web", "pss:privileged spec.template.spec.containers[0].securityContext.privileged"}},
		},
		{
			name: "restricted catches what baseline allows",
			body: mustReview(t, admissionv1.Create, newPod("enforcing", "root", func(s *corev1.PodSpec) { s.SecurityContext.RunAsNonRoot = nil }), nil),
			want: want{code: 403, msg: []string{"pss:runAsNonRoot"}},
		},
		{
			name: "warn allows a privileged deployment with warnings",
			body: mustReview(t, admissionv1.Create, newDeployment("warned", "web", privileged), nil),
			want: want{allowed: true, warnings: []string{
				`Deployment/warned/web violates level "baseline"`,
				"pss:privileged spec.template.spec.containers[0].securityContext.privileged",
			}},
		},
		{
			name: "warn at baseline says nothing of restricted-only findings",
			body: mustReview(t, admissionv1.Create, newPod("warned", "root", func(s *corev1.PodSpec) { s.SecurityContext.RunAsNonRoot = nil }), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "audit allows with annotations",
			body: mustReview(t, admissionv1.Create, newPod("audited", "bad", privileged), nil),
			want: want{allowed: true, noWarn: true, audit: map[string]string{
				"audit-level":    "restricted",
				"audit-findings": "pss:privileged spec.containers[0].securityContext.privileged",
				"audit-score":    "6.",
			}},
		},
		{
			name: "unlabelled namespace allows anything silently",
			body: mustReview(t, admissionv1.Create, newPod("plain", "bad", privileged, hostNetwork), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "layered labels: baseline enforced, restricted warned, rampart audited",
			body: mustReview(t, admissionv1.Create, newPod("layered", "root", func(s *corev1.PodSpec) {
				s.SecurityContext.RunAsNonRoot = nil
				s.Containers[0].Resources.Limits = nil
			}), nil),
			want: want{allowed: true, warnings: []string{"pss:runAsNonRoot"}, audit: map[string]string{
				"audit-level": "rampart", "audit-findings": "rampart:resource-limits",
			}},
		},
		{
			name: "score level denies at or above the threshold",
			body: mustReview(t, admissionv1.Create, newDeployment("scored", "web", privileged, hostNetwork), nil),
			want: want{code: 403, msg: []string{"Deployment/scored/web has risk score 8.71 (High), at or above score:7", "pss:privileged", "pss:hostNamespaces spec.template.spec.hostNetwork"}},
		},
		{
			name: "score level allows below the threshold",
			body: mustReview(t, admissionv1.Create, newDeployment("scored-hi", "web", privileged, hostNetwork), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "score level allows a hardened workload",
			body: mustReview(t, admissionv1.Create, newDeployment("scored", "web"), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "update that turns privileged on is denied with the change",
			body: mustReview(t, admissionv1.Update, newDeployment("enforcing", "web", privileged), newDeployment("enforcing", "web", func(s *corev1.PodSpec) {
				s.Containers[0].SecurityContext.Privileged = new(bool)
			})),
			want: want{code: 403, uid: "uid-UPDATE-web", msg: []string{
				"pss:privileged",
				"This update changes:\n- spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: false -> <unset>\n- spec.template.spec.containers[0].securityContext.privileged: false -> true",
			}},
		},
		{
			name: "update in a warned namespace warns with the change",
			body: mustReview(t, admissionv1.Update, newDeployment("warned", "web", privileged), newDeployment("warned", "web")),
			want: want{allowed: true, warnings: []string{
				"pss:privileged",
				"this update changes spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: false -> <unset>; spec.template.spec.containers[0].securityContext.privileged: <unset> -> true",
			}},
		},
		{
			name: "update changing no security field of an old violator is allowed with a warning",
			body: mustReview(t, admissionv1.Update,
				func() runtime.Object {
					d := newDeployment("enforcing", "legacy", privileged)
					d.Annotations = map[string]string{"deployment.kubernetes.io/revision": "2"}
					return d
				}(),
				newDeployment("enforcing", "legacy", privileged)),
			want: want{allowed: true, warnings: []string{"allowed because this update changes no security-relevant field", "pss:privileged"}},
		},
		{
			name: "update that fixes a violation is allowed",
			body: mustReview(t, admissionv1.Update, newDeployment("enforcing", "web"), newDeployment("enforcing", "web", privileged)),
			want: want{allowed: true, noWarn: true},
		},
		{
			name:          "cluster-scoped binding to cluster-admin under --cluster-scoped-mode enforce=rampart",
			body:          mustReview(t, admissionv1.Create, newClusterAdminBinding("ci-admin"), nil),
			clusterScoped: "enforce=rampart",
			want:          want{code: 403, msg: []string{"ClusterRoleBinding/ci-admin violates level \"rampart\"", "set by --cluster-scoped-mode enforce=rampart", "cis:5.1.1 roleRef.name"}},
		},
		{
			name:          "cluster-scoped binding warned under the default mode",
			body:          mustReview(t, admissionv1.Create, newClusterAdminBinding("ci-admin"), nil),
			clusterScoped: "warn=rampart,audit=rampart",
			want:          want{allowed: true, warnings: []string{"cis:5.1.1"}, audit: map[string]string{"audit-findings": "cis:5.1.1"}},
		},
		{
			name: "cluster-scoped binding allowed with no cluster-scoped mode",
			body: mustReview(t, admissionv1.Create, newClusterAdminBinding("ci-admin"), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "wildcard Role denied at level rampart",
			body: mustReview(t, admissionv1.Create, newWildcardRole("strict", "all"), nil),
			want: want{code: 403, msg: []string{"cis:5.1.3"}},
		},
		{
			name: "wildcard Role passes restricted, a pod-only level",
			body: mustReview(t, admissionv1.Create, newWildcardRole("enforcing", "all"), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "level rampart admits a hardened pod",
			body: mustReview(t, admissionv1.Create, newPod("strict", "ok"), nil),
			want: want{allowed: true, noWarn: true},
		},
		{
			name: "level rampart denies a missing ephemeral-storage limit that restricted allows",
			body: mustReview(t, admissionv1.Create, newPod("strict", "disk", func(s *corev1.PodSpec) {
				delete(s.Containers[0].Resources.Limits, corev1.ResourceEphemeralStorage)
			}), nil),
			want: want{code: 403, msg: []string{"rampart:ephemeral-storage-limit"}},
		},
		{
			name: "level rampart denies a mutable image that restricted allows",
			body: mustReview(t, admissionv1.Create, newPod("strict", "latest", func(s *corev1.PodSpec) { s.Containers[0].Image = "nginx:latest" }), nil),
			want: want{code: 403, msg: []string{"rampart:image-mutable-tag"}},
		},
		{
			name: "an invalid label value fails closed at level rampart",
			body: mustReview(t, admissionv1.Create, newPod("typo", "bad", privileged), nil),
			want: want{code: 403, msg: []string{"pss:privileged"}, warnings: []string{`invalid label guardrail.rampart.io/enforce=restricted-ish: level "restricted-ish"`}},
		},
		{
			name: "a field this build does not know is allowed with a warning",
			body: []byte(withUnknown),
			want: want{allowed: true, warnings: []string{`Pod/warned/future: unknown field "spec.futureIsolation", not checked`}},
		},
		{
			name: "delete is allowed without looking",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"d1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"operation":"DELETE","namespace":"enforcing","name":"x","userInfo":{}}}`),
			want: want{allowed: true, uid: "d1", noWarn: true},
		},

		// Requests the guardrail cannot read: 400, with the UID when known.
		{
			name: "bad JSON",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{`),
			want: want{code: 400, msg: []string{"decode AdmissionReview"}},
		},
		{
			name: "not an object",
			body: []byte(`[1,2,3]`),
			want: want{code: 400, msg: []string{"not a JSON object"}},
		},
		{
			name: "empty body",
			body: nil,
			want: want{code: 400, msg: []string{"empty body"}},
		},
		{
			name: "wrong apiVersion",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u-beta"}}`),
			want: want{code: 400, uid: "u-beta", msg: []string{`apiVersion "admission.k8s.io/v1beta1"`, "(request u-beta)"}},
		},
		{
			name: "wrong kind",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u-kind"}}`),
			want: want{code: 400, uid: "u-kind", msg: []string{`kind "Pod"`}},
		},
		{
			name: "missing request",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
			want: want{code: 400, msg: []string{"has no request"}},
		},
		{
			name: "request without uid",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`),
			want: want{code: 400, msg: []string{"no uid"}},
		},
		{
			name: "field of the wrong type in the object",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-type","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"enforcing","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":42}}}}`),
			want: want{code: 400, uid: "u-type", msg: []string{"decode object as Pod", "(request u-type)"}},
		},
		{
			name: "object that is not an object",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-str","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"enforcing","object":"privileged"}}`),
			want: want{code: 400, uid: "u-str", msg: []string{"object is not a JSON object"}},
		},
		{
			name: "no object",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-none","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"enforcing"}}`),
			want: want{code: 400, uid: "u-none", msg: []string{"has no object"}},
		},
		{
			name: "object of another kind than the request",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-mix","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"enforcing","object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}}}`),
			want: want{code: 400, uid: "u-mix", msg: []string{"object is apps/v1 Deployment, but the request is for v1 Pod"}},
		},
		{
			name: "update without oldObject",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-old","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"UPDATE","namespace":"enforcing","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}}}`),
			want: want{code: 400, uid: "u-old", msg: []string{"has no oldObject"}},
		},
		{
			name: "kind the guardrail does not review",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-secret","kind":{"group":"","version":"v1","kind":"Secret"},"operation":"CREATE","namespace":"enforcing","object":{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}}}`),
			want: want{code: 400, uid: "u-secret", msg: []string{"v1 Secret is not reviewed"}},
		},
		{
			name: "namespaced kind without a namespace",
			body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-ns","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}}}`),
			want: want{code: 400, uid: "u-ns", msg: []string{"has no namespace"}},
		},
		{
			name: "namespace the cluster does not have fails closed",
			body: mustReview(t, admissionv1.Create, newPod("gone", "x"), nil),
			want: want{code: 404, msg: []string{`read namespace "gone"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustGuardrail(t, tt.clusterScoped)
			resp := run(t, g, tt.body)
			w := tt.want
			if resp.Allowed != w.allowed {
				t.Fatalf("allowed = %v, want %v; result %+v, warnings %q", resp.Allowed, w.allowed, resp.Result, resp.Warnings)
			}
			if w.uid != "" && string(resp.UID) != w.uid {
				t.Errorf("uid = %q, want %q", resp.UID, w.uid)
			}
			if !w.allowed {
				if resp.Result.Code != w.code {
					t.Errorf("code = %d, want %d (%s)", resp.Result.Code, w.code, resp.Result.Message)
				}
				for _, s := range w.msg {
					if !strings.Contains(resp.Result.Message, s) {
						t.Errorf("message lacks %q:\n%s", s, resp.Result.Message)
					}
				}
			} else if resp.Result != nil {
				t.Errorf("allowed with a result: %+v", resp.Result)
			}
			for _, s := range w.warnings {
				if !containsSub(resp.Warnings, s) {
					t.Errorf("no warning contains %q:\n%s", s, strings.Join(resp.Warnings, "\n"))
				}
			}
			if w.noWarn && len(resp.Warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", strings.Join(resp.Warnings, "\n"))
			}
			for k, v := range w.audit {
				if !strings.Contains(resp.AuditAnnotations[k], v) {
					t.Errorf("audit annotation %s = %q, want it to contain %q", k, resp.AuditAnnotations[k], v)
				}
			}
			if w.audit == nil && len(resp.AuditAnnotations) > 0 {
				t.Errorf("unexpected audit annotations %v", resp.AuditAnnotations)
			}
		})
	}
}

func containsSub(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
