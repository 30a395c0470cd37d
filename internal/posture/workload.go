package posture

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rampartsec/rampart/internal/resource"
)

// Workload is a Pod or a controller seen through its pod template: the
// metadata and spec its pods get, and where they sit in the object's
// document, so that findings name paths the user can find.
type Workload struct {
	Object   *resource.Object
	Meta     *metav1.ObjectMeta // the pods' metadata (labels, annotations)
	Spec     *corev1.PodSpec
	MetaPath string // "metadata" for a Pod, "spec.template.metadata" for a Deployment
	SpecPath string // "spec" for a Pod, "spec.template.spec" for a Deployment
}

// NewWorkload returns the workload view of o, or false when o's kind has
// no pod template.
func NewWorkload(o *resource.Object) (*Workload, bool) {
	w := &Workload{Object: o, MetaPath: "spec.template.metadata", SpecPath: "spec.template.spec"}
	switch t := o.Obj.(type) {
	case *corev1.Pod:
		w.Meta, w.Spec, w.MetaPath, w.SpecPath = &t.ObjectMeta, &t.Spec, "metadata", "spec"
	case *appsv1.Deployment:
		w.Meta, w.Spec = &t.Spec.Template.ObjectMeta, &t.Spec.Template.Spec
	case *appsv1.StatefulSet:
		w.Meta, w.Spec = &t.Spec.Template.ObjectMeta, &t.Spec.Template.Spec
	case *appsv1.DaemonSet:
		w.Meta, w.Spec = &t.Spec.Template.ObjectMeta, &t.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		w.Meta, w.Spec = &t.Spec.Template.ObjectMeta, &t.Spec.Template.Spec
	case *batchv1.Job:
		w.Meta, w.Spec = &t.Spec.Template.ObjectMeta, &t.Spec.Template.Spec
	case *batchv1.CronJob:
		w.Meta, w.Spec = &t.Spec.JobTemplate.Spec.Template.ObjectMeta, &t.Spec.JobTemplate.Spec.Template.Spec
		w.MetaPath, w.SpecPath = "spec.jobTemplate.spec.template.metadata", "spec.jobTemplate.spec.template.spec"
	default:
		return nil, false
	}
	return w, true
}

// Ref names the workload's object.
func (w *Workload) Ref() ObjectRef { return refOf(w.Object) }

// Container is one container of a pod spec with its path.
type Container struct {
	*corev1.Container
	Path string // "spec.template.spec.initContainers[0]"
	Kind string // "container", "init container" or "ephemeral container"
}

// Containers returns the init, regular and ephemeral containers in that
// order, the order Kubernetes' own checks visit them in.
func (w *Workload) Containers() []Container {
	var out []Container
	for i := range w.Spec.InitContainers {
		out = append(out, Container{&w.Spec.InitContainers[i], fmt.Sprintf("%s.initContainers[%d]", w.SpecPath, i), "init container"})
	}
	for i := range w.Spec.Containers {
		out = append(out, Container{&w.Spec.Containers[i], fmt.Sprintf("%s.containers[%d]", w.SpecPath, i), "container"})
	}
	for i := range w.Spec.EphemeralContainers {
		c := (*corev1.Container)(&w.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		out = append(out, Container{c, fmt.Sprintf("%s.ephemeralContainers[%d]", w.SpecPath, i), "ephemeral container"})
	}
	return out
}

// Name returns `container "app"`, the way messages name a container.
func (c Container) Name() string { return fmt.Sprintf("%s %q", c.Kind, c.Container.Name) }

// ServiceAccount returns the service account the pods run as.
func (w *Workload) ServiceAccount() string {
	switch {
	case w.Spec.ServiceAccountName != "":
		return w.Spec.ServiceAccountName
	case w.Spec.DeprecatedServiceAccount != "":
		return w.Spec.DeprecatedServiceAccount
	}
	return "default"
}

// isWindows reports whether the pods declare the Windows OS, for which the
// Linux-only settings (capabilities, seccomp, read-only root) do not apply.
func (w *Workload) isWindows() bool {
	return w.Spec.OS != nil && w.Spec.OS.Name == corev1.Windows
}
