package posture

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

func rampartRef(control, title string) []Reference {
	return []Reference{{Standard: Rampart, Control: control, Title: title, URL: "https://github.com/rampartsec/rampart/blob/main/docs/posture.md#" + control}}
}

// rampartChecks are Rampart's own rules, for risks neither CIS section 5
// nor the Pod Security Standards cover.
func rampartChecks() []Check {
	return []Check{
		{Rule: Rule{ID: "rampart:image-mutable-tag", Title: "Image uses a mutable tag", Severity: Medium,
			References:  rampartRef("image-mutable-tag", "Images are pinned"),
			Description: "An image tagged latest, or not tagged at all, changes whenever someone pushes; what runs is not what was reviewed.",
			Remediation: "Pin the image by digest (image: name@sha256:...) or at least by an immutable version tag."},
			Workload: forEachImage(func(ref ImageRef) (bool, string) {
				if !ref.Mutable() {
					return false, ""
				}
				if ref.Tag == "" {
					return true, "has no tag, so it follows latest"
				}
				return true, "uses tag latest"
			})},
		{Rule: Rule{ID: "rampart:image-no-digest", Title: "Image not pinned by digest", Severity: Low,
			References:  rampartRef("image-no-digest", "Images are pinned"),
			Description: "A tag can be moved to other content; only a digest names exactly what was built and scanned.",
			Remediation: "Reference the image by digest (image: name:tag@sha256:...)."},
			Workload: forEachImage(func(ref ImageRef) (bool, string) {
				if ref.Pinned() || ref.Mutable() {
					return false, "" // a mutable tag is reported as such
				}
				return true, "is not pinned by digest"
			})},
		{Rule: Rule{ID: "rampart:resource-limits", Title: "No resource limits", Severity: Medium,
			References:  rampartRef("resource-limits", "Containers have CPU and memory limits"),
			Description: "A container without limits can starve every other pod on its node, by accident or under attack.",
			Remediation: "Set resources.limits.cpu and resources.limits.memory."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				for _, c := range w.Containers() {
					if c.Kind == "ephemeral container" {
						continue // ephemeral containers cannot have resources
					}
					var missing []string
					for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
						if _, ok := c.Resources.Limits[res]; !ok {
							missing = append(missing, string(res))
						}
					}
					if len(missing) > 0 {
						r.Add(c.Path+".resources.limits", "%s has no %s limit", c.Name(), strings.Join(missing, " or "))
					}
				}
			}},
		{Rule: Rule{ID: "rampart:ephemeral-storage-limit", Title: "No ephemeral-storage limit", Severity: Medium,
			References: append(rampartRef("ephemeral-storage-limit", "Containers have an ephemeral-storage limit"),
				Reference{Standard: KubeScore, Control: "container-ephemeral-storage-request-and-limit"}),
			Description: "A container without an ephemeral-storage limit can fill its node's disk with logs, emptyDir volumes and writable layers, and get other pods evicted.",
			Remediation: "Set resources.limits.ephemeral-storage (the request defaults to the limit; set resources.requests.ephemeral-storage lower to let the scheduler pack pods)."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				for _, c := range w.Containers() {
					if c.Kind == "ephemeral container" {
						continue // ephemeral containers cannot have resources
					}
					if _, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; !ok {
						r.Add(c.Path+".resources.limits.ephemeral-storage", "%s has no ephemeral-storage limit", c.Name())
					}
				}
			}},
		{Rule: Rule{ID: "rampart:low-uid", Title: "runAsUser not above 10000", Severity: Low,
			References: append(rampartRef("low-uid", "Containers run as a UID above 10000"),
				Reference{Standard: KubeScore, Control: "container-security-context-user-group-id"},
				Reference{Standard: Trivy, Control: "KSV-0020"}),
			Description: "UIDs up to 10000 are those of the node's own users and system accounts; a process that escapes its container with such a UID acts as one of them.",
			Remediation: "Set securityContext.runAsUser above 10000 in the pod or in every container (the container's value overrides the pod's)."},
			Workload: idAbove10000("runAsUser", "UID",
				func(s *corev1.PodSecurityContext) *int64 { return s.RunAsUser },
				func(s *corev1.SecurityContext) *int64 { return s.RunAsUser })},
		{Rule: Rule{ID: "rampart:low-gid", Title: "runAsGroup not above 10000", Severity: Low,
			References: append(rampartRef("low-gid", "Containers run as a GID above 10000"),
				Reference{Standard: KubeScore, Control: "container-security-context-user-group-id"},
				Reference{Standard: Trivy, Control: "KSV-0021"}),
			Description: "GIDs up to 10000 are those of the node's own groups; a process that escapes its container with such a primary group can read and write what the group owns on the node.",
			Remediation: "Set securityContext.runAsGroup above 10000 in the pod or in every container (the container's value overrides the pod's)."},
			Workload: idAbove10000("runAsGroup", "GID",
				func(s *corev1.PodSecurityContext) *int64 { return s.RunAsGroup },
				func(s *corev1.SecurityContext) *int64 { return s.RunAsGroup })},
		{Rule: Rule{ID: "rampart:writable-root-fs", Title: "Writable root filesystem", Severity: Medium,
			References:  rampartRef("writable-root-fs", "Root filesystems are read-only"),
			Description: "A writable root filesystem lets an intruder drop tools and persist changes inside the container.",
			Remediation: "Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the application writes."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				if w.isWindows() {
					return
				}
				for _, c := range w.Containers() {
					if v := sc(c).ReadOnlyRootFilesystem; v == nil || !*v {
						r.Add(c.Path+".securityContext.readOnlyRootFilesystem", "%s can write to its root filesystem", c.Name())
					}
				}
			}},
		{Rule: Rule{ID: "rampart:sensitive-host-mount", Title: "Sensitive host path mounted", Severity: High,
			References:  rampartRef("sensitive-host-mount", "No sensitive host paths"),
			Description: "Container runtime sockets, /proc, /etc, /var/run and the root directory give a container control of its node.",
			Remediation: "Remove the hostPath volume; use the Kubernetes API or a dedicated agent instead of the node's files."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				for i, v := range w.Spec.Volumes {
					if v.HostPath == nil {
						continue
					}
					if why := sensitiveHostPath(v.HostPath.Path); why != "" {
						r.Add(fmt.Sprintf("%s.volumes[%d].hostPath.path", w.SpecPath, i), "volume %q mounts %s (%s)", v.Name, v.HostPath.Path, why)
					}
				}
			}},
		{Rule: Rule{ID: "rampart:mesh-disabled", Title: "Namespace not in the mesh", Severity: Medium,
			References:  rampartRef("mesh-disabled", "Sensitive workloads talk over mTLS"),
			Description: "Workloads that hold Secrets or serve a Service should only be reached over mutually authenticated TLS; Rampart's mesh provides it to namespaces labelled rampart.io/mesh=enabled.",
			Remediation: "Label the namespace rampart.io/mesh=enabled."},
			Workload: func(w *Workload, inv *Inventory, r *Reporter) {
				if inv.MeshEnabled(w.Object.Namespace) {
					return
				}
				var why []string
				if secrets := consumedSecrets(w); len(secrets) > 0 {
					why = append(why, "reads Secret "+strings.Join(secrets, ", "))
				}
				if svcs := inv.Services(w); len(svcs) > 0 {
					why = append(why, "is exposed by Service "+strings.Join(svcs, ", "))
				}
				if len(why) == 0 {
					return
				}
				r.Add("metadata.namespace", "namespace %s is not labelled %s=enabled, and the workload %s", w.Object.Namespace, MeshLabel, strings.Join(why, " and "))
			}},
	}
}

// minHostID is the highest UID or GID left to the node's own users; kube-score
// and Trivy ask for IDs above it.
const minHostID = 10000

// idAbove10000 reports each container whose effective field (the
// container's securityContext value, else the pod's) is unset or at most
// 10000. A finding points at the field that sets the value, or at the
// container's field when neither sets it; a low pod-level value inherited
// by several containers is one finding. Windows pods are skipped: they run
// as user names, not IDs.
func idAbove10000(field, what string, pod func(*corev1.PodSecurityContext) *int64, ctr func(*corev1.SecurityContext) *int64) func(*Workload, *Inventory, *Reporter) {
	return func(w *Workload, _ *Inventory, r *Reporter) {
		if w.isWindows() {
			return
		}
		var podID *int64
		if w.Spec.SecurityContext != nil {
			podID = pod(w.Spec.SecurityContext)
		}
		var inherited []string
		for _, c := range w.Containers() {
			id := podID
			if c.SecurityContext != nil && ctr(c.SecurityContext) != nil {
				id = ctr(c.SecurityContext)
				if *id <= minHostID {
					r.Add(c.Path+".securityContext."+field, "%s runs as %s %d, not above %d", c.Name(), what, *id, minHostID)
				}
				continue
			}
			switch {
			case id == nil:
				r.Add(c.Path+".securityContext."+field, "%s sets no %s, in the pod or the container, so it runs as the image's %s", c.Name(), field, what)
			case *id <= minHostID:
				inherited = append(inherited, c.Name())
			}
		}
		if len(inherited) > 0 {
			r.Add(w.SpecPath+".securityContext."+field, "%s inherit %s %d from the pod, not above %d", strings.Join(inherited, ", "), what, *podID, minHostID)
		}
	}
}

func forEachImage(bad func(ImageRef) (bool, string)) func(*Workload, *Inventory, *Reporter) {
	return func(w *Workload, _ *Inventory, r *Reporter) {
		for _, c := range w.Containers() {
			if ok, why := bad(ParseImage(c.Image)); ok {
				r.Add(c.Path+".image", "%s image %s %s", c.Name(), c.Image, why)
			}
		}
	}
}

// sensitiveHostPath explains why mounting p is dangerous, or returns "".
// Paths are cleaned first, so "/etc/../" is "/".
func sensitiveHostPath(p string) string {
	p = path.Clean("/" + p)
	base := path.Base(p)
	switch {
	case p == "/":
		return "the node's root filesystem"
	case slices.Contains([]string{"docker.sock", "containerd.sock", "crio.sock", "cri-dockerd.sock"}, base):
		return "a container runtime socket"
	}
	for _, d := range []struct{ dir, why string }{
		{"/proc", "the node's process table and kernel settings"},
		{"/etc", "the node's configuration and credentials"},
		{"/var/run", "the node's runtime sockets"},
		{"/run", "the node's runtime sockets"},
		{"/var/lib/kubelet", "the kubelet's credentials and pod volumes"},
		{"/var/lib/docker", "the container runtime's state"},
		{"/var/lib/containerd", "the container runtime's state"},
		{"/root", "root's home directory"},
		{"/boot", "the node's kernel and boot loader"},
		{"/dev", "the node's devices"},
		{"/sys", "the node's kernel interfaces"},
	} {
		if p == d.dir || strings.HasPrefix(p, d.dir+"/") {
			return d.why
		}
	}
	return ""
}

// consumedSecrets lists the Secrets w's pods read, through environment
// variables or volumes, sorted and without duplicates.
func consumedSecrets(w *Workload) []string {
	var out []string
	for _, c := range w.Containers() {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out = append(out, e.SecretRef.Name)
			}
		}
	}
	for _, v := range w.Spec.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					out = append(out, s.Secret.Name)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
