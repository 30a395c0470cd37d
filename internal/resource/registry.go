package resource

import (
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kindInfo is what the decoder knows about one apiVersion/kind.
type kindInfo struct {
	newObj     func() any
	namespaced bool
	validate   func(v *validator, obj any)
	// pathNames marks kinds whose names only need to be valid path
	// segments, as the apiserver allows for RBAC ("system:controller:x").
	pathNames bool
}

func pathNamed(k kindInfo) kindInfo {
	k.pathNames = true
	return k
}

func typed[T any](namespaced bool, validate func(*validator, *T)) kindInfo {
	k := kindInfo{newObj: func() any { return new(T) }, namespaced: namespaced}
	if validate != nil {
		k.validate = func(v *validator, obj any) { validate(v, obj.(*T)) }
	}
	return k
}

// registry lists every kind Rampart reads, keyed by "apiVersion/kind".
var registry = map[string]kindInfo{
	"v1/Pod":              typed(true, validatePod),
	"v1/Namespace":        typed[corev1.Namespace](false, nil),
	"v1/Service":          typed(true, validateService),
	"v1/ServiceAccount":   typed[corev1.ServiceAccount](true, nil),
	"v1/Secret":           typed[corev1.Secret](true, nil),
	"v1/ConfigMap":        typed[corev1.ConfigMap](true, nil),
	"apps/v1/Deployment":  typed(true, func(v *validator, d *appsv1.Deployment) { v.template(d.Spec.Selector, &d.Spec.Template, "spec") }),
	"apps/v1/StatefulSet": typed(true, func(v *validator, d *appsv1.StatefulSet) { v.template(d.Spec.Selector, &d.Spec.Template, "spec") }),
	"apps/v1/DaemonSet":   typed(true, func(v *validator, d *appsv1.DaemonSet) { v.template(d.Spec.Selector, &d.Spec.Template, "spec") }),
	"apps/v1/ReplicaSet":  typed(true, func(v *validator, d *appsv1.ReplicaSet) { v.template(d.Spec.Selector, &d.Spec.Template, "spec") }),
	"batch/v1/Job":        typed(true, func(v *validator, j *batchv1.Job) { v.template(j.Spec.Selector, &j.Spec.Template, "spec") }),
	"batch/v1/CronJob": typed(true, func(v *validator, j *batchv1.CronJob) {
		v.podSpec(&j.Spec.JobTemplate.Spec.Template.Spec, "spec.jobTemplate.spec.template.spec")
	}),
	"networking.k8s.io/v1/NetworkPolicy":              typed(true, validateNetworkPolicy),
	"networking.k8s.io/v1/Ingress":                    typed[networkingv1.Ingress](true, nil),
	"cilium.io/v2/CiliumNetworkPolicy":                typed(true, validateCNP),
	"cilium.io/v2/CiliumClusterwideNetworkPolicy":     typed(false, validateCNP),
	"security.istio.io/v1/AuthorizationPolicy":        typed(true, validateAuthorizationPolicy),
	"security.istio.io/v1beta1/AuthorizationPolicy":   typed(true, validateAuthorizationPolicy),
	"security.istio.io/v1/PeerAuthentication":         typed(true, validatePeerAuthentication),
	"security.istio.io/v1beta1/PeerAuthentication":    typed(true, validatePeerAuthentication),
	"security.istio.io/v1/RequestAuthentication":      typed(true, validateRequestAuthentication),
	"security.istio.io/v1beta1/RequestAuthentication": typed(true, validateRequestAuthentication),
	"rbac.authorization.k8s.io/v1/Role":               pathNamed(typed[rbacv1.Role](true, nil)),
	"rbac.authorization.k8s.io/v1/ClusterRole":        pathNamed(typed[rbacv1.ClusterRole](false, nil)),
	"rbac.authorization.k8s.io/v1/RoleBinding":        pathNamed(typed[rbacv1.RoleBinding](true, nil)),
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": pathNamed(typed[rbacv1.ClusterRoleBinding](false, nil)),
}

func supportedKinds() string {
	var kinds []string
	for k := range maps.Keys(registry) {
		kinds = append(kinds, k[strings.LastIndexByte(k, '/')+1:])
	}
	slices.Sort(kinds)
	return strings.Join(slices.Compact(kinds), ", ")
}

func metaOf(obj any) metav1.Object { return obj.(metav1.Object) }
