package guardrail_test

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// FuzzReviewBytes feeds arbitrary bodies to the AdmissionReview decoder and
// the checks behind it. Invariants, whatever the input: no panic, the
// answer is a well-formed v1 AdmissionReview, a denial has a failure status
// with a code and a message, and a request whose UID can be read gets that
// UID back.
func FuzzReviewBytes(f *testing.F) {
	seeds := [][]byte{
		// A valid review that is denied, one that is allowed, and an update.
		mustReview(f, admissionv1.Create, newPod("enforcing", "bad", privileged), nil),
		mustReview(f, admissionv1.Create, newDeployment("warned", "web", privileged, hostNetwork), nil),
		mustReview(f, admissionv1.Update, newDeployment("enforcing", "web", privileged), newDeployment("enforcing", "web")),
		// RBAC, cluster-scoped and namespaced.
		mustReview(f, admissionv1.Create, newClusterAdminBinding("ci"), nil),
		mustReview(f, admissionv1.Create, newWildcardRole("strict", "all"), nil),
		// Near misses: truncated, wrong version, null request, object null,
		// an object of another kind, numbers where strings go.
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"enforcing","object":null}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"enforcing","object":{"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1"}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"version":"v1","kind":"Pod"},"operation":"UPDATE","namespace":"enforcing","object":{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}},"oldObject":{}}}`),
		// Not JSON objects at all.
		[]byte(`null`), []byte(`"AdmissionReview"`), []byte{0xff, 0xfe}, nil,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	g := mustGuardrail(f, "enforce=rampart")
	f.Fuzz(func(t *testing.T, body []byte) {
		resp := decodeResponse(t, g.ReviewBytes(context.Background(), body))
		var in admissionv1.AdmissionReview
		if json.Unmarshal(body, &in) == nil && in.Request != nil && in.Request.UID != "" && resp.UID != in.Request.UID {
			// encoding/json and the case-sensitive decoder agree on a
			// well-formed "uid"; a mismatch means the UID was lost.
			if in.APIVersion == "admission.k8s.io/v1" && in.Kind == "AdmissionReview" {
				t.Errorf("response uid %q, request uid %q", resp.UID, in.Request.UID)
			}
		}
		if resp.Allowed && resp.Result != nil {
			t.Errorf("allowed with a status: %+v", resp.Result)
		}
	})
}

func TestReviewNilRequest(t *testing.T) {
	resp := mustGuardrail(t, "").Review(context.Background(), nil)
	if resp.Allowed || resp.Result == nil || resp.Result.Code != 400 {
		t.Errorf("nil request: %+v", resp)
	}
}

// TestReviewSurvivesOddPods runs pods with unusual but valid shapes, so
// that the fuzz seeds are not the only guard against panics in the checks.
func TestReviewSurvivesOddPods(t *testing.T) {
	g := mustGuardrail(t, "")
	odd := []func(*corev1.PodSpec){
		func(s *corev1.PodSpec) { s.Containers = nil },
		func(s *corev1.PodSpec) { s.SecurityContext = nil; s.Containers[0].SecurityContext = nil },
		func(s *corev1.PodSpec) { s.Volumes = []corev1.Volume{{Name: "v"}} },
		func(s *corev1.PodSpec) {
			s.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg", Image: "busybox"}}}
		},
		func(s *corev1.PodSpec) { s.OS = &corev1.PodOS{Name: corev1.Windows} },
	}
	for i, m := range odd {
		resp := run(t, g, mustReview(t, admissionv1.Create, newPod("strict", "odd", m), nil))
		if resp.Result != nil && resp.Result.Code != 403 {
			t.Errorf("odd pod %d: %+v", i, resp.Result)
		}
	}
}
