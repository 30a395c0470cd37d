package guardrail_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/rampartsec/rampart/internal/guardrail"
)

// namespaces of the static test cluster, one per policy under test.
var testNamespaces = map[string]map[string]string{
	"enforcing": {"guardrail.rampart.io/enforce": "restricted"},
	"warned":    {"guardrail.rampart.io/warn": "baseline"},
	"audited":   {"guardrail.rampart.io/audit": "restricted"},
	"strict":    {"guardrail.rampart.io/enforce": "rampart"},
	"scored":    {"guardrail.rampart.io/enforce": "score:7"},
	"scored-hi": {"guardrail.rampart.io/enforce": "score:9.5"},
	"typo":      {"guardrail.rampart.io/enforce": "restricted-ish"},
	"layered":   {"guardrail.rampart.io/enforce": "baseline", "guardrail.rampart.io/warn": "restricted", "guardrail.rampart.io/audit": "rampart"},
	"plain":     nil,
}

// mustGuardrail returns a guardrail over a static cluster holding
// testNamespaces, each with a default-deny NetworkPolicy and in the mesh,
// so that a hardened workload scores low; cluster-scoped objects get
// clusterScoped ("" for none).
func mustGuardrail(t testing.TB, clusterScoped string) *guardrail.Guardrail {
	t.Helper()
	c := &guardrail.StaticCluster{Namespaces: map[string]*corev1.Namespace{}}
	for name, labels := range testNamespaces {
		l := map[string]string{"kubernetes.io/metadata.name": name, "rampart.io/mesh": "enabled"}
		for k, v := range labels {
			l[k] = v
		}
		c.Namespaces[name] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
		c.Policies = append(c.Policies, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: name},
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			},
		})
	}
	p, err := guardrail.ParseModes(clusterScoped)
	if err != nil {
		t.Fatal(err)
	}
	return &guardrail.Guardrail{Cluster: c, ClusterScoped: p}
}

// hardenedSpec is a pod spec that meets the restricted profile and every
// Rampart rule the guardrail gates on.
func hardenedSpec() corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName:           "api",
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.example.com/shop/api:1.4.2@sha256:3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: mustQuantity("500m"), corev1.ResourceMemory: mustQuantity("256Mi"),
				corev1.ResourceEphemeralStorage: mustQuantity("1Gi"),
			}},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// privileged makes the first container privileged; the API server rejects
// privileged with allowPrivilegeEscalation false, so that goes.
func privileged(s *corev1.PodSpec) {
	s.Containers[0].SecurityContext.Privileged = ptr.To(true)
	s.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil
}

func hostNetwork(s *corev1.PodSpec) { s.HostNetwork = true }

func newPod(ns, name string, muts ...func(*corev1.PodSpec)) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec:       hardenedSpec(),
	}
	for _, m := range muts {
		m(&p.Spec)
	}
	return p
}

func newDeployment(ns, name string, muts ...func(*corev1.PodSpec)) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: hardenedSpec()},
		},
	}
	for _, m := range muts {
		m(&d.Spec.Template.Spec)
	}
	return d
}

func newClusterAdminBinding(name string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "ci", Namespace: "plain"}},
	}
}

func newWildcardRole(ns, name string) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	}
}

// gvkOf returns the request kind of a typed object from its TypeMeta.
func gvkOf(obj runtime.Object) metav1.GroupVersionKind {
	gvk := obj.GetObjectKind().GroupVersionKind()
	return metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
}

// mustReview builds the AdmissionReview the API server would send for op on
// obj (and old, for an update).
func mustReview(t testing.TB, op admissionv1.Operation, obj, old runtime.Object) []byte {
	t.Helper()
	m := obj.(metav1.Object)
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID(fmt.Sprintf("uid-%s-%s", op, m.GetName())),
		Kind:      gvkOf(obj),
		Operation: op,
		Namespace: m.GetNamespace(),
		Name:      m.GetName(),
		UserInfo:  authUser(),
		Object:    runtime.RawExtension{Raw: mustJSON(t, obj)},
	}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	return mustJSON(t, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodeResponse parses a webhook answer and checks the invariants every
// answer must meet: an admission.k8s.io/v1 AdmissionReview with a
// response, and a denial always carries a failure status with a 4xx or
// 5xx code and a message.
func decodeResponse(t testing.TB, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, body)
	}
	if r.APIVersion != "admission.k8s.io/v1" || r.Kind != "AdmissionReview" || r.Response == nil || r.Request != nil {
		t.Fatalf("malformed response: %s", body)
	}
	if !r.Response.Allowed {
		s := r.Response.Result
		if s == nil || s.Status != metav1.StatusFailure || s.Code < 400 || s.Code > 599 || s.Message == "" {
			t.Fatalf("denial without a proper status: %s", body)
		}
	}
	return r.Response
}

func run(t testing.TB, g *guardrail.Guardrail, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	return decodeResponse(t, g.ReviewBytes(context.Background(), body))
}

func authUser() authenticationv1.UserInfo { return authenticationv1.UserInfo{Username: "alice"} }

func mustQuantity(s string) apiresource.Quantity { return apiresource.MustParse(s) }
