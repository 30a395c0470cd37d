package guardrail_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/rampartsec/rampart/internal/guardrail"
	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

// corpusReview builds the CREATE review of a decoded corpus object.
func corpusReview(t *testing.T, o *resource.Object) []byte {
	t.Helper()
	gv := strings.SplitN(o.APIVersion, "/", 2)
	kind := metav1.GroupVersionKind{Version: gv[0], Kind: o.Kind}
	if len(gv) == 2 {
		kind = metav1.GroupVersionKind{Group: gv[0], Version: gv[1], Kind: o.Kind}
	}
	return mustJSON(t, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("corpus-" + o.Name), Kind: kind, Operation: admissionv1.Create,
			Namespace: o.Namespace, Name: o.Name, Object: runtime.RawExtension{Raw: mustJSON(t, o.Obj)},
		},
	})
}

// TestEnforceAgreesWithPodSecurityAdmission admits every workload of the
// posture corpus into a namespace enforcing baseline, then restricted, and
// compares the verdict with Kubernetes' own Pod Security evaluator at the
// same level: the guardrail's PSS levels must deny exactly what Pod
// Security Admission denies. Hardened manifests must also pass level
// rampart.
func TestEnforceAgreesWithPodSecurityAdmission(t *testing.T) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../posture/testdata/corpus/*.yaml")
	checked := 0
	for _, f := range files {
		if filepath.Base(f) == "expect.yaml" {
			continue
		}
		objs, err := resource.LoadAndDecode([]string{f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			w, ok := posture.NewWorkload(o)
			if !ok {
				continue
			}
			levels := []string{"baseline", "restricted"}
			if strings.HasPrefix(filepath.Base(f), "hardened-") {
				levels = append(levels, "rampart")
			}
			for _, level := range levels {
				g := &guardrail.Guardrail{Cluster: &guardrail.StaticCluster{Namespaces: map[string]*corev1.Namespace{
					o.Namespace: {ObjectMeta: metav1.ObjectMeta{Name: o.Namespace, Labels: map[string]string{"guardrail.rampart.io/enforce": level}}},
				}}}
				resp := decodeResponse(t, g.ReviewBytes(context.Background(), corpusReview(t, o)))
				if resp.Result != nil && resp.Result.Code != 403 {
					t.Fatalf("%s %s: %s", filepath.Base(f), o.Ref(), resp.Result.Message)
				}
				want := true
				if level != "rampart" {
					lv := api.LevelBaseline
					if level == "restricted" {
						lv = api.LevelRestricted
					}
					want = policy.AggregateCheckResults(eval.EvaluatePod(api.LevelVersion{Level: lv, Version: api.LatestVersion()}, w.Meta, w.Spec)).Allowed
				}
				if resp.Allowed != want {
					msg := ""
					if resp.Result != nil {
						msg = resp.Result.Message
					}
					t.Errorf("%s %s at %s: allowed = %v, want %v %s", filepath.Base(f), o.Ref(), level, resp.Allowed, want, msg)
				}
				checked++
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d verdicts compared", checked)
	}
	t.Logf("%d verdicts compared", checked)
}
