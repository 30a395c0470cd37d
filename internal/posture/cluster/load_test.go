package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/utils/ptr"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/posture/cluster"
)

func fakeCluster(t *testing.T) cluster.Clients {
	t.Helper()
	labels := map[string]string{"app": "web"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "d-1"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx",
					SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}},
			},
		},
	}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "rs-1",
			OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "web", UID: "d-1", Controller: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Selector: deploy.Spec.Selector, Template: deploy.Spec.Template},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1-abc", Namespace: "shop", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", UID: "rs-1", Controller: ptr.To(true)}}},
		Spec: deploy.Spec.Template.Spec,
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Data: map[string][]byte{"password": []byte("hunter2")}}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ops"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "ops"}},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	var objs []runtime.Object
	for _, o := range []struct {
		obj        any
		apiVersion string
		kind       string
	}{
		{ns, "v1", "Namespace"}, {deploy, "apps/v1", "Deployment"}, {rs, "apps/v1", "ReplicaSet"},
		{pod, "v1", "Pod"}, {secret, "v1", "Secret"}, {crb, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding"},
	} {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o.obj)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetAPIVersion(o.apiVersion)
		u.SetKind(o.kind)
		objs = append(objs, u)
	}

	cnp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"ingress":          []any{map[string]any{"fromEndpoints": []any{map[string]any{"matchLabels": map[string]any{"app": "lb"}}}}},
		},
	}}
	listKinds := map[schema.GroupVersionResource]string{
		{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}:            "CiliumNetworkPolicyList",
		{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"}: "CiliumClusterwideNetworkPolicyList",
	}
	for _, l := range []struct{ group, version, resource, kind string }{
		{"", "v1", "namespaces", "Namespace"}, {"", "v1", "serviceaccounts", "ServiceAccount"}, {"", "v1", "services", "Service"},
		{"", "v1", "secrets", "Secret"}, {"", "v1", "configmaps", "ConfigMap"}, {"", "v1", "pods", "Pod"},
		{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"}, {"networking.k8s.io", "v1", "ingresses", "Ingress"},
		{"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole"}, {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding"},
		{"rbac.authorization.k8s.io", "v1", "roles", "Role"}, {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"},
		{"apps", "v1", "deployments", "Deployment"}, {"apps", "v1", "statefulsets", "StatefulSet"}, {"apps", "v1", "daemonsets", "DaemonSet"},
		{"apps", "v1", "replicasets", "ReplicaSet"}, {"batch", "v1", "cronjobs", "CronJob"}, {"batch", "v1", "jobs", "Job"},
	} {
		listKinds[schema.GroupVersionResource{Group: l.group, Version: l.version, Resource: l.resource}] = l.kind + "List"
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, append(objs, cnp)...)
	return cluster.Clients{Dynamic: dyn}
}

func TestLoad(t *testing.T) {
	objs, err := cluster.Load(context.Background(), fakeCluster(t))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, o := range objs {
		refs = append(refs, o.Ref())
		if o.Source.File != cluster.Source {
			t.Errorf("%s: source %q, want %q", o.Ref(), o.Source.File, cluster.Source)
		}
		if s, ok := o.Obj.(*corev1.Secret); ok && (len(s.Data) > 0 || len(s.StringData) > 0) {
			t.Errorf("%s: secret data was kept", o.Ref())
		}
	}
	want := []string{"Namespace/shop", "Secret/shop/db", "ClusterRoleBinding/ops", "Deployment/shop/web",
		"ReplicaSet/shop/web-1", "Pod/shop/web-1-abc", "CiliumNetworkPolicy/shop/web"}
	if !slices.Equal(refs, want) {
		t.Errorf("objects = %v, want %v", refs, want)
	}

	rep := posture.Audit(objs, posture.Options{})
	var onPriv []string
	for _, f := range rep.Findings {
		if f.ID == "pss:privileged" {
			onPriv = append(onPriv, f.Object.String())
		}
		if f.File != cluster.Source || f.Line != 0 {
			t.Errorf("%s: location %s:%d, want %s with no line", f.ID, f.File, f.Line, cluster.Source)
		}
		if f.ID == "cis:5.3.2" && f.Object.Kind == "Deployment" {
			t.Error("the CiliumNetworkPolicy selects the Deployment, yet cis:5.3.2 was reported")
		}
	}
	// The ReplicaSet and the Pod are owned by listed objects: only the
	// Deployment is reported.
	if !slices.Equal(onPriv, []string{"Deployment/shop/web"}) {
		t.Errorf("pss:privileged on %v, want only the Deployment", onPriv)
	}
	if !slices.ContainsFunc(rep.Findings, func(f posture.Finding) bool { return f.ID == "cis:5.1.1" }) {
		t.Error("the cluster-admin binding was not reported")
	}
}

func TestNewClientsBadKubeconfig(t *testing.T) {
	_, err := cluster.NewClients(t.TempDir()+"/missing", "")
	if err == nil || !strings.Contains(err.Error(), "load kubeconfig") {
		t.Errorf("error = %v, want load kubeconfig", err)
	}
}
