package posture

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rampartsec/rampart/internal/resource"
)

// cisWorkloadChecks implement the CIS section 5.2 to 5.7 recommendations
// that Kubernetes' Pod Security Standards checks do not already decide.
func cisWorkloadChecks() []Check {
	return []Check{
		{Rule: Rule{ID: "cis:5.2.1", Title: "Namespace has no Pod Security admission policy", Severity: Medium, References: cisRefs("5.2.1"),
			Description: "Without an enforce label, Pod Security admission admits any pod into the namespace.",
			Remediation: "Label the namespace pod-security.kubernetes.io/enforce=restricted (or baseline)."},
			Object: func(o *resource.Object, _ *Inventory, r *Reporter) {
				ns, ok := o.Obj.(*corev1.Namespace)
				if !ok {
					return
				}
				if _, ok := ns.Labels["pod-security.kubernetes.io/enforce"]; !ok {
					r.Add("metadata.labels", "namespace %s has no pod-security.kubernetes.io/enforce label", o.Name)
				}
			}},
		{Rule: Rule{ID: "cis:5.2.9", Title: "Capability added", Severity: Low, References: cisRefs("5.2.9"), Fact: "capability-added",
			Description: "Every added capability widens what a compromised container can do to the node.",
			Remediation: "Remove the capability from securityContext.capabilities.add unless the workload cannot run without it."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				for _, c := range w.Containers() {
					if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
						continue
					}
					for i, cp := range c.SecurityContext.Capabilities.Add {
						r.Report(Detail{Field: fmt.Sprintf("%s.securityContext.capabilities.add[%d]", c.Path, i),
							Message: fmt.Sprintf("%s adds capability %s", c.Name(), cp), Refs: cisRefs(capCIS(cp)...)})
					}
				}
			}},
		{Rule: Rule{ID: "cis:5.3.2", Title: "No network policy", Severity: Medium, References: cisRefs("5.3.2"),
			Description: "Pods that no NetworkPolicy or CiliumNetworkPolicy selects accept traffic from, and send it to, anywhere.",
			Remediation: "Add a default-deny NetworkPolicy to the namespace and policies that allow the traffic each workload needs."},
			Object: func(o *resource.Object, inv *Inventory, r *Reporter) {
				if _, ok := o.Obj.(*corev1.Namespace); ok && inv.PolicyCount(o.Name) == 0 {
					r.Add("metadata.name", "namespace %s has no NetworkPolicy or CiliumNetworkPolicy", o.Name)
				}
			},
			Workload: func(w *Workload, inv *Inventory, r *Reporter) {
				if !inv.Coverage(w).Selected() {
					r.Add(w.MetaPath+".labels", "no NetworkPolicy or Cilium policy selects these pods")
				}
			}},
		{Rule: Rule{ID: "cis:5.4.1", Title: "Secret in environment variable", Severity: Medium, References: cisRefs("5.4.1"),
			Description: "Environment variables leak into logs, crash dumps and child processes; mounted files do not.",
			Remediation: "Mount the Secret as a volume and read the value from the file."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				for _, c := range w.Containers() {
					for i, e := range c.Env {
						if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
							r.Add(fmt.Sprintf("%s.env[%d].valueFrom.secretKeyRef", c.Path, i), "%s reads Secret %s key %s into $%s", c.Name(), e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, e.Name)
						}
					}
					for i, e := range c.EnvFrom {
						if e.SecretRef != nil {
							r.Add(fmt.Sprintf("%s.envFrom[%d].secretRef", c.Path, i), "%s loads every key of Secret %s into its environment", c.Name(), e.SecretRef.Name)
						}
					}
				}
			}},
		{Rule: Rule{ID: "cis:5.7.1", Title: "Workload in a system namespace", Severity: Low, References: cisRefs("5.7.1"),
			Description: "kube-system, kube-public and kube-node-lease are administrative boundaries for cluster components; an application there shares their permissions and policies.",
			Remediation: "Move the workload to a namespace of its own."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				switch w.Object.Namespace {
				case "kube-system", "kube-public", "kube-node-lease":
				default:
					return
				}
				if strings.HasPrefix(w.Spec.PriorityClassName, "system-") {
					return // a cluster component, which belongs there
				}
				r.Add("metadata.namespace", "workload runs in system namespace %s", w.Object.Namespace)
			}},
		{Rule: Rule{ID: "cis:5.7.3", Title: "No security context", Severity: Low, References: cisRefs("5.7.3"),
			Description: "Without a securityContext a container runs with the runtime's defaults: root, writable root filesystem and the default capability set.",
			Remediation: "Give the container a securityContext (runAsNonRoot, allowPrivilegeEscalation: false, readOnlyRootFilesystem, capabilities.drop: [ALL])."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				if w.Spec.SecurityContext != nil {
					return // the pod applies one; what its containers lack, the PSS checks name
				}
				for _, c := range w.Containers() {
					if c.SecurityContext == nil {
						r.Add(c.Path+".securityContext", "neither the pod nor %s has a securityContext", c.Name())
					}
				}
			}},
		{Rule: Rule{ID: "cis:5.7.4", Title: "Object in the default namespace", Severity: Low, References: cisRefs("5.7.4"),
			Description: "The default namespace has no policies of its own, and everything without a namespace lands in it.",
			Remediation: "Set metadata.namespace to a namespace created for the application."},
			Object: func(o *resource.Object, _ *Inventory, r *Reporter) {
				if o.Namespace != "default" || builtinDefault(o) {
					return
				}
				if o.Line("metadata.namespace") == o.Line("metadata") {
					r.Add("metadata.namespace", "%s has no namespace, so it lands in default", o.Kind)
					return
				}
				r.Add("metadata.namespace", "%s is in the default namespace", o.Kind)
			}},
	}
}

// builtinDefault reports objects Kubernetes itself keeps in default.
func builtinDefault(o *resource.Object) bool {
	switch o.Kind + "/" + o.Name {
	case "Service/kubernetes", "ServiceAccount/default", "ConfigMap/kube-root-ca.crt":
		return true
	}
	return false
}
