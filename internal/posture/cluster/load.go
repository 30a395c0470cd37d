package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rampartsec/rampart/internal/resource"
)

// Source is the Source.File of every object read from a cluster; outputs
// use it to know that there is no file to point at.
const Source = "cluster"

// Clients are the API clients Load reads through. Tests pass fakes.
//
// Only the dynamic client is used, with typed objects converted from its
// unstructured answers: client-go's typed clientset registers every API
// group of Kubernetes at start-up, which made every rampart command, not
// only a live audit, start several milliseconds slower.
type Clients struct {
	Dynamic dynamic.Interface
}

// NewClients builds clients from a kubeconfig file and an optional context.
func NewClients(kubeconfig, context string) (Clients, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return Clients{}, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "rampart-audit"
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("dynamic client: %w", err)
	}
	return Clients{Dynamic: dyn}, nil
}

// lister lists one kind across all namespaces into its typed objects.
type lister struct {
	apiVersion, kind string
	resource         string
	newObj           func() metav1.Object
	// scrub removes what Rampart must not keep (Secret data).
	scrub func(metav1.Object)
}

func typed[T any, PT interface {
	*T
	metav1.Object
}]() func() metav1.Object {
	return func() metav1.Object { return PT(new(T)) }
}

var all = metav1.ListOptions{}

// listers are the kinds Rampart audits, in the order objects are returned.
var listers = []lister{
	{apiVersion: "v1", kind: "Namespace", resource: "namespaces", newObj: typed[corev1.Namespace]()},
	{apiVersion: "v1", kind: "ServiceAccount", resource: "serviceaccounts", newObj: typed[corev1.ServiceAccount]()},
	{apiVersion: "v1", kind: "Service", resource: "services", newObj: typed[corev1.Service]()},
	{apiVersion: "v1", kind: "Secret", resource: "secrets", newObj: typed[corev1.Secret](), scrub: func(o metav1.Object) {
		// Rampart needs to know a Secret exists, never its content.
		s := o.(*corev1.Secret)
		s.Data, s.StringData = nil, nil
		delete(s.Annotations, corev1.LastAppliedConfigAnnotation)
	}},
	{apiVersion: "v1", kind: "ConfigMap", resource: "configmaps", newObj: typed[corev1.ConfigMap]()},
	{apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", resource: "networkpolicies", newObj: typed[networkingv1.NetworkPolicy]()},
	{apiVersion: "networking.k8s.io/v1", kind: "Ingress", resource: "ingresses", newObj: typed[networkingv1.Ingress]()},
	{apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", resource: "clusterroles", newObj: typed[rbacv1.ClusterRole]()},
	{apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", resource: "clusterrolebindings", newObj: typed[rbacv1.ClusterRoleBinding]()},
	{apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", resource: "roles", newObj: typed[rbacv1.Role]()},
	{apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding", resource: "rolebindings", newObj: typed[rbacv1.RoleBinding]()},
	{apiVersion: "apps/v1", kind: "Deployment", resource: "deployments", newObj: typed[appsv1.Deployment]()},
	{apiVersion: "apps/v1", kind: "StatefulSet", resource: "statefulsets", newObj: typed[appsv1.StatefulSet]()},
	{apiVersion: "apps/v1", kind: "DaemonSet", resource: "daemonsets", newObj: typed[appsv1.DaemonSet]()},
	{apiVersion: "apps/v1", kind: "ReplicaSet", resource: "replicasets", newObj: typed[appsv1.ReplicaSet]()},
	{apiVersion: "batch/v1", kind: "CronJob", resource: "cronjobs", newObj: typed[batchv1.CronJob]()},
	{apiVersion: "batch/v1", kind: "Job", resource: "jobs", newObj: typed[batchv1.Job]()},
	{apiVersion: "v1", kind: "Pod", resource: "pods", newObj: typed[corev1.Pod]()},
}

// gvr is the resource a lister lists.
func (l lister) gvr() schema.GroupVersionResource {
	gv, _ := schema.ParseGroupVersion(l.apiVersion)
	return gv.WithResource(l.resource)
}

// list lists the kind and converts every item to its typed object.
func (l lister) list(ctx context.Context, c dynamic.Interface) ([]any, error) {
	ul, err := c.Resource(l.gvr()).List(ctx, all)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(ul.Items))
	for i := range ul.Items {
		o := l.newObj()
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(ul.Items[i].Object, o); err != nil {
			return nil, fmt.Errorf("convert %s/%s: %w", ul.Items[i].GetNamespace(), ul.Items[i].GetName(), err)
		}
		if l.scrub != nil {
			l.scrub(o)
		}
		out = append(out, o)
	}
	return out, nil
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
		objs, err := l.list(ctx, c.Dynamic)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", l.kind, err)
		}
		out = append(out, convert(l.apiVersion, l.kind, objs)...)
	}
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
