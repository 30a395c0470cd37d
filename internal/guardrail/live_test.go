package guardrail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/rampartsec/rampart/internal/cli"
	"github.com/rampartsec/rampart/internal/nodecli"
	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/testenv"
)

// TestMain stops the API server that TestLiveAdmission may start.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopKube()
	os.Exit(code)
}

// warnings collects the warnings the API server returns to a client.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns and forgets the warnings received so far.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// TestLiveAdmission runs the guardrail as the CLI runs it against a real
// kube-apiserver: `rampart guardrail install --apply` registers the webhook
// with generated certificates, `rampart guardrail serve` answers on
// loopback, and client-go creates workloads in namespaces that enforce,
// warn or do nothing. Then `rampart audit --kubeconfig` must report what
// the guardrail let in.
func TestLiveAdmission(t *testing.T) {
	kubeconfig := testenv.KubeConfigPath(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	warned := &warnings{}
	cfg.WarningHandler = warned
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Namespaces: the selector label keeps the webhook away from anything
	// else a shared test cluster holds.
	const sel = "rampart-guardrail-test"
	nss := map[string]map[string]string{
		"rg-enforce": {sel: "true", "guardrail.rampart.io/enforce": "restricted"},
		"rg-warn":    {sel: "true", "guardrail.rampart.io/warn": "baseline"},
		"rg-plain":   {sel: "true"},
	}
	for name, labels := range nss {
		_ = kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		waitGone(t, ctx, kube, name)
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}

	// install --apply, through the CLI.
	dir := t.TempDir()
	addr := freeAddr(t)
	const hook = "guardrail-test.rampart.io"
	var out, errb bytes.Buffer
	code := nodecli.Main([]string{"guardrail", "install", "--service-url", "https://" + addr,
		"--cert-dir", dir, "--name", hook, "--namespace-selector", sel + "=true",
		"--apply", "--kubeconfig", kubeconfig}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("install: exit %d\n%s%s", code, out.String(), errb.String())
	}
	// The webhook fails closed: remove it before the server stops, or every
	// later RBAC write of the cluster would fail.
	t.Cleanup(func() {
		_ = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), hook, metav1.DeleteOptions{})
	})
	for _, f := range []string{"ca.key", "tls.key"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}

	// serve, through the CLI, until the test ends.
	serveErr := &testenv.SyncBuffer{}
	serveCtx, stopServe := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := nodecli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: serveErr, Err: serveErr})
	root.SetArgs([]string{"guardrail", "serve", "--cert", filepath.Join(dir, "tls.crt"), "--key", filepath.Join(dir, "tls.key"),
		"--listen", addr, "--kubeconfig", kubeconfig, "--cluster-scoped-mode", "enforce=rampart"})
	go func() { done <- root.ExecuteContext(serveCtx) }()
	t.Cleanup(func() {
		_ = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), hook, metav1.DeleteOptions{})
		stopServe()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v\n%s", err, serveErr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	waitHealthy(t, ctx, addr, filepath.Join(dir, "ca.crt"), done, serveErr)

	// The API server picks the configuration up asynchronously: wait until
	// a dry-run of a privileged pod in the enforcing namespace is denied.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := kube.CoreV1().Pods("rg-enforce").Create(ctx, livePod("probe", true), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "rampart guardrail") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not active after a minute: last answer %v\nserver log:\n%s", err, serveErr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	warned.take()

	t.Run("enforce denies a privileged Deployment with its findings", func(t *testing.T) {
		_, err := kube.AppsV1().Deployments("rg-enforce").Create(ctx, liveDeployment("web", true), metav1.CreateOptions{})
		if err == nil {
			t.Fatal("privileged Deployment admitted into an enforcing namespace")
		}
		for _, want := range []string{
			`admission webhook "guardrail-test.rampart.io" denied the request`,
			`Deployment/rg-enforce/web violates level "restricted"`,
			"pss:privileged spec.template.spec.containers[0].securityContext.privileged",
			"Fix: Remove securityContext.privileged",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("denial lacks %q:\n%v", want, err)
			}
		}
	})
	t.Run("enforce admits a hardened Deployment and Pod, denies a privileged Pod", func(t *testing.T) {
		if _, err := kube.AppsV1().Deployments("rg-enforce").Create(ctx, liveDeployment("api", false), metav1.CreateOptions{}); err != nil {
			t.Fatalf("hardened Deployment denied: %v", err)
		}
		if _, err := kube.CoreV1().Pods("rg-enforce").Create(ctx, livePod("good", false), metav1.CreateOptions{}); err != nil {
			t.Fatalf("hardened Pod denied: %v", err)
		}
		_, err := kube.CoreV1().Pods("rg-enforce").Create(ctx, livePod("bad", true), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "pss:privileged spec.containers[0].securityContext.privileged") {
			t.Fatalf("privileged Pod: %v", err)
		}
		if w := warned.take(); len(w) > 0 {
			t.Errorf("warnings in an enforcing namespace for compliant objects: %q", w)
		}
	})
	t.Run("update turning privileged on is denied with the change", func(t *testing.T) {
		d, err := kube.AppsV1().Deployments("rg-enforce").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		privileged(&d.Spec.Template.Spec)
		_, err = kube.AppsV1().Deployments("rg-enforce").Update(ctx, d, metav1.UpdateOptions{})
		if err == nil {
			t.Fatal("update to privileged admitted")
		}
		for _, want := range []string{"pss:privileged", "This update changes:", "spec.template.spec.containers[0].securityContext.privileged: false -> true"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("denial lacks %q:\n%v", want, err)
			}
		}
		// A label change leaves the security fields alone and passes.
		d.Spec.Template.Spec.Containers[0].SecurityContext.Privileged = ptr.To(false)
		d.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(false)
		d.Labels = map[string]string{"team": "shop"}
		if _, err := kube.AppsV1().Deployments("rg-enforce").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Errorf("label update denied: %v", err)
		}
	})
	t.Run("warn admits a privileged Deployment with warnings", func(t *testing.T) {
		warned.take()
		if _, err := kube.AppsV1().Deployments("rg-warn").Create(ctx, liveDeployment("web", true), metav1.CreateOptions{}); err != nil {
			t.Fatalf("denied in a warn namespace: %v", err)
		}
		w := strings.Join(warned.take(), "\n")
		for _, want := range []string{`Deployment/rg-warn/web violates level "baseline"`, "pss:privileged spec.template.spec.containers[0].securityContext.privileged"} {
			if !strings.Contains(w, want) {
				t.Errorf("warnings lack %q:\n%s", want, w)
			}
		}
	})
	t.Run("an unlabelled namespace admits a privileged Deployment silently", func(t *testing.T) {
		warned.take()
		if _, err := kube.AppsV1().Deployments("rg-plain").Create(ctx, liveDeployment("web", true), metav1.CreateOptions{}); err != nil {
			t.Fatalf("denied in an unlabelled namespace: %v", err)
		}
		if w := warned.take(); len(w) > 0 {
			t.Errorf("warnings: %q", w)
		}
	})
	t.Run("cluster-scoped binding to cluster-admin is denied under enforce=rampart", func(t *testing.T) {
		_, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "rg-ci-admin"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "ci", Namespace: "rg-plain"}},
		}, metav1.CreateOptions{})
		if err == nil {
			_ = kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), "rg-ci-admin", metav1.DeleteOptions{})
			t.Fatal("cluster-admin binding admitted")
		}
		if !strings.Contains(err.Error(), "cis:5.1.1 roleRef.name") {
			t.Errorf("denial: %v", err)
		}
	})
	t.Run("rampart audit --kubeconfig reports what was let in", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := cli.Main([]string{"audit", "--kubeconfig", kubeconfig, "-o", "json"}, nil, &out, &errb)
		if code != 0 {
			t.Fatalf("audit: exit %d\n%s", code, errb.String())
		}
		var rep struct {
			Findings []struct {
				ID     string            `json:"id"`
				Object posture.ObjectRef `json:"object"`
				Field  string            `json:"field"`
			} `json:"findings"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, f := range rep.Findings {
			got[f.ID+" "+f.Object.String()+" "+f.Field] = true
		}
		for _, want := range []string{
			"pss:privileged Deployment/rg-warn/web spec.template.spec.containers[0].securityContext.privileged",
			"pss:privileged Deployment/rg-plain/web spec.template.spec.containers[0].securityContext.privileged",
		} {
			if !got[want] {
				t.Errorf("audit lacks %q", want)
			}
		}
		for k := range got {
			if strings.Contains(k, "/rg-enforce/") && strings.HasPrefix(k, "pss:") {
				t.Errorf("audit finds a PSS violation the guardrail should have kept out: %s", k)
			}
		}
	})
}

func liveSpec(priv bool) corev1.PodSpec {
	s := hardenedSpec()
	if priv {
		privileged(&s)
	} else {
		s.Containers[0].SecurityContext.Privileged = ptr.To(false)
	}
	return s
}

func livePod(name string, priv bool) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: liveSpec(priv)}
}

func liveDeployment(name string, priv bool) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: liveSpec(priv)},
		},
	}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy polls /healthz over TLS, verified with the generated CA,
// until the server answers, fails or a minute passes.
func waitHealthy(t *testing.T, ctx context.Context, addr, caFile string, done <-chan error, log *testenv.SyncBuffer) {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, log.String())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("guardrail not healthy after a minute: %v\n%s", err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone waits until a namespace deleted by an earlier run against the
// same cluster (RAMPART_KUBECONFIG) is gone, rather than reuse it.
func waitGone(t *testing.T, ctx context.Context, kube kubernetes.Interface, name string) {
	t.Helper()
	for range 600 {
		_, err := kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("namespace %s from an earlier run is still there", name)
}
