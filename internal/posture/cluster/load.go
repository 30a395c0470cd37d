package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rampartsec/rampart/internal/resource"
)

// Source is the Source.File of every object read from a cluster; outputs
// use it to know that there is no file to point at.
const Source = "cluster"

// Clients are the API clients Load reads through. Tests pass fakes.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface // for Cilium policies; nil skips them
}

// NewClients builds clients from a kubeconfig file and an optional context.
func NewClients(kubeconfig, context string) (Clients, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return Clients{}, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "rampart-audit"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("dynamic client: %w", err)
	}
	return Clients{Kube: kube, Dynamic: dyn}, nil
}

// lister lists one kind across all namespaces.
type lister struct {
	apiVersion, kind string
	list             func(ctx context.Context, c kubernetes.Interface) ([]any, error)
}

func items[T any](l []T, err error) ([]any, error) {
	if err != nil {
		return nil, err
	}
	out := make([]any, len(l))
	for i := range l {
		out[i] = &l[i]
	}
	return out, nil
}

var all = metav1.ListOptions{}

// listers are the kinds Rampart audits, in the order objects are returned.
var listers = []lister{
	{"v1", "Namespace", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.CoreV1().Namespaces().List(ctx, all)
		return items(orNil(l, err, func() []corev1.Namespace { return l.Items }))
	}},
	{"v1", "ServiceAccount", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.CoreV1().ServiceAccounts("").List(ctx, all)
		return items(orNil(l, err, func() []corev1.ServiceAccount { return l.Items }))
	}},
	{"v1", "Service", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.CoreV1().Services("").List(ctx, all)
		return items(orNil(l, err, func() []corev1.Service { return l.Items }))
	}},
	{"v1", "Secret", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.CoreV1().Secrets("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		for i := range l.Items {
			// Rampart needs to know a Secret exists, never its content.
			l.Items[i].Data, l.Items[i].StringData = nil, nil
			delete(l.Items[i].Annotations, corev1.LastAppliedConfigAnnotation)
		}
		return items(l.Items, nil)
	}},
	{"v1", "ConfigMap", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.CoreV1().ConfigMaps("").List(ctx, all)
		return items(orNil(l, err, func() []corev1.ConfigMap { return l.Items }))
	}},
	{"networking.k8s.io/v1", "NetworkPolicy", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.NetworkingV1().NetworkPolicies("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"networking.k8s.io/v1", "Ingress", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.NetworkingV1().Ingresses("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"rbac.authorization.k8s.io/v1", "ClusterRole", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.RbacV1().ClusterRoles().List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.RbacV1().ClusterRoleBindings().List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"rbac.authorization.k8s.io/v1", "Role", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.RbacV1().Roles("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"rbac.authorization.k8s.io/v1", "RoleBinding", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.RbacV1().RoleBindings("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"apps/v1", "Deployment", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.AppsV1().Deployments("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"apps/v1", "StatefulSet", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.AppsV1().StatefulSets("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"apps/v1", "DaemonSet", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.AppsV1().DaemonSets("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"apps/v1", "ReplicaSet", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.AppsV1().ReplicaSets("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"batch/v1", "CronJob", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.BatchV1().CronJobs("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"batch/v1", "Job", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.BatchV1().Jobs("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
	{"v1", "Pod", func(ctx context.Context, c kubernetes.Interface) ([]any, error) {
		l, err := c.CoreV1().Pods("").List(ctx, all)
		if err != nil {
			return nil, err
		}
		return items(l.Items, nil)
	}},
}

func orNil[L any, T any](l *L, err error, get func() []T) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return get(), nil
}

// ciliumKinds are read through the dynamic client when the CRDs exist.
var ciliumKinds = []struct {
	kind string
	gvr  schema.GroupVersionResource
}{
	{"CiliumNetworkPolicy", schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}},
	{"CiliumClusterwideNetworkPolicy", schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"}},
}

// Load lists every audited kind and returns the objects kind by kind (in
// the order of listers), each kind sorted by namespace and name, so that
// reports are deterministic. A kind the user may not list fails the load:
// an audit that silently skipped RBAC would look cleaner than it is.
// Cilium policies are skipped when their CRDs are not installed.
func Load(ctx context.Context, c Clients) ([]*resource.Object, error) {
	var out []*resource.Object
	for _, l := range listers {
		objs, err := l.list(ctx, c.Kube)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", l.kind, err)
		}
		out = append(out, convert(l.apiVersion, l.kind, objs)...)
	}
	if c.Dynamic != nil {
		for _, k := range ciliumKinds {
			list, err := c.Dynamic.Resource(k.gvr).List(ctx, all)
			if apierrors.IsNotFound(err) || isNoMatch(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", k.kind, err)
			}
			var objs []any
			for i := range list.Items {
				var p resource.CiliumNetworkPolicy
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &p); err != nil {
					return nil, fmt.Errorf("convert %s %s/%s: %w", k.kind, list.Items[i].GetNamespace(), list.Items[i].GetName(), err)
				}
				objs = append(objs, &p)
			}
			out = append(out, convert("cilium.io/v2", k.kind, objs)...)
		}
	}
	return out, nil
}

func isNoMatch(err error) bool {
	var se apierrors.APIStatus
	return err != nil && errors.As(err, &se) && strings.Contains(err.Error(), "could not find the requested resource")
}

func convert(apiVersion, kind string, objs []any) []*resource.Object {
	out := make([]*resource.Object, 0, len(objs))
	for _, o := range objs {
		m := o.(metav1.Object)
		out = append(out, &resource.Object{
			Source:     resource.Source{File: Source},
			APIVersion: apiVersion,
			Kind:       kind,
			Namespace:  m.GetNamespace(),
			Name:       m.GetName(),
			Obj:        o,
		})
	}
	slices.SortFunc(out, func(a, b *resource.Object) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
