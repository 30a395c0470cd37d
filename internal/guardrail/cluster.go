package guardrail

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
)

// Cluster is what the guardrail reads about the cluster besides the object
// under review: the namespace's labels (its policy, and whether it is in the
// mesh) and the NetworkPolicies that decide whether a workload is isolated,
// which lower its risk score.
type Cluster interface {
	// Namespace returns the namespace called name, or an error for which
	// apierrors.IsNotFound is true when there is none.
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	// NetworkPolicies returns the NetworkPolicies of namespace ns.
	NetworkPolicies(ns string) ([]*networkingv1.NetworkPolicy, error)
}

// StaticCluster is a Cluster held in memory, for tests and offline checks.
type StaticCluster struct {
	Namespaces map[string]*corev1.Namespace
	Policies   []*networkingv1.NetworkPolicy
}

var _ Cluster = (*StaticCluster)(nil)

// Namespace implements Cluster.
func (c *StaticCluster) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	if ns, ok := c.Namespaces[name]; ok {
		return ns, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
}

// NetworkPolicies implements Cluster.
func (c *StaticCluster) NetworkPolicies(ns string) ([]*networkingv1.NetworkPolicy, error) {
	var out []*networkingv1.NetworkPolicy
	for _, p := range c.Policies {
		if p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out, nil
}

// InformerCluster reads namespaces and NetworkPolicies from informer caches,
// so that a review costs no API request. A namespace missing from the cache
// (created a moment ago, before the watch delivered it) is read from the
// API server directly.
type InformerCluster struct {
	client     kubernetes.Interface
	namespaces corelisters.NamespaceLister
	policies   networkinglisters.NetworkPolicyLister
}

var _ Cluster = (*InformerCluster)(nil)

// syncTimeout bounds the first list of namespaces and NetworkPolicies.
const syncTimeout = time.Minute

// NewInformerCluster starts informers on namespaces and NetworkPolicies and
// waits until their caches are filled. They stop when ctx is done. It needs
// get, list and watch on namespaces and list and watch on
// networking.k8s.io networkpolicies.
func NewInformerCluster(ctx context.Context, client kubernetes.Interface) (*InformerCluster, error) {
	// Managed fields are most of an object's size and nothing here reads
	// them.
	strip := func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return obj, nil
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(strip))
	c := &InformerCluster{
		client:     client,
		namespaces: factory.Core().V1().Namespaces().Lister(),
		policies:   factory.Networking().V1().NetworkPolicies().Lister(),
	}
	factory.Start(ctx.Done())
	wait, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	for typ, ok := range factory.WaitForCacheSync(wait.Done()) {
		if !ok {
			return nil, fmt.Errorf("sync %v cache: not done within %v", typ, syncTimeout)
		}
	}
	return c, nil
}

// Namespace implements Cluster.
func (c *InformerCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns, err := c.namespaces.Get(name)
	if err == nil {
		return ns, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
}

// NetworkPolicies implements Cluster. The policies are the cache's own
// objects, shared with every other review: they are only read.
func (c *InformerCluster) NetworkPolicies(ns string) ([]*networkingv1.NetworkPolicy, error) {
	return c.policies.NetworkPolicies(ns).List(labels.Everything())
}
