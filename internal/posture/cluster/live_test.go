package cluster_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/posture/cluster"
	"github.com/rampartsec/rampart/internal/testenv"
)

// TestMain stops the shared API server that TestLiveAudit may start.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopKube()
	os.Exit(code)
}

// TestLiveAudit audits objects created in a real kube-apiserver: what the
// API server stores (defaults filled in, RBAC objects of its own) must go
// through the same checks as files, and Secrets must arrive without data.
func TestLiveAudit(t *testing.T) {
	kubeconfig := testenv.KubeConfigPath(t)
	clients, err := cluster.NewClients(kubeconfig, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The test's own set-up uses the typed client; Load does not.
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ns := "rampart-audit-live"
	_ = kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "web"}
	must(kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		_ = kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), "rampart-audit-live", metav1.DeleteOptions{})
	})
	must(kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{}))
	must(kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx",
					SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}},
			},
		},
	}, metav1.CreateOptions{}))
	must(kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "rampart-audit-live"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "web", Namespace: ns}},
	}, metav1.CreateOptions{}))

	objs, err := cluster.Load(ctx, clients)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Secret); ok && o.Namespace == ns && (len(s.Data) > 0 || len(s.StringData) > 0) {
			t.Errorf("%s: secret data was kept", o.Ref())
		}
	}
	rep := posture.Audit(objs, posture.Options{})
	var got []string
	for _, f := range rep.Findings {
		if f.Object.Namespace == ns || f.Object.Name == "rampart-audit-live" || f.Object.Name == ns {
			got = append(got, f.ID+" "+f.Object.String()+" "+f.Field)
		}
	}
	for _, want := range []string{
		"pss:privileged Deployment/rampart-audit-live/web spec.template.spec.containers[0].securityContext.privileged",
		"cis:5.1.1 ClusterRoleBinding/rampart-audit-live roleRef.name",
		"cis:5.2.1 Namespace/rampart-audit-live metadata.labels",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing finding %q in\n%v", want, got)
		}
	}
	// The built-in cluster-admin binding is Kubernetes' own and is skipped.
	for _, f := range rep.Findings {
		if f.Object.String() == "ClusterRoleBinding/cluster-admin" {
			t.Errorf("bootstrap binding reported: %s", f.ID)
		}
	}
}
