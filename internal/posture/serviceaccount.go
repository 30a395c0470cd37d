package posture

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/rampartsec/rampart/internal/resource"
)

// serviceAccountChecks implement CIS 5.1.5 and 5.1.6: workloads should run
// as their own service account, and only mount its token when they call
// the API server.
func serviceAccountChecks() []Check {
	return []Check{
		{Rule: Rule{ID: "cis:5.1.5", Title: "Default service account used", Severity: Low, References: cisRefs("5.1.5"),
			Description: "Every pod in a namespace can use its default service account, so permissions granted to it are granted to all of them.",
			Remediation: "Give each workload its own service account (serviceAccountName), bind roles to that account, and set automountServiceAccountToken: false on the default service account."},
			Workload: func(w *Workload, _ *Inventory, r *Reporter) {
				if w.ServiceAccount() == "default" {
					r.Add(w.SpecPath+".serviceAccountName", "pods run as the namespace's default service account")
				}
			},
			Object: func(o *resource.Object, _ *Inventory, r *Reporter) {
				if sa, ok := o.Obj.(*corev1.ServiceAccount); ok && o.Name == "default" && (sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken) {
					r.Add("automountServiceAccountToken", "the default service account does not set automountServiceAccountToken: false")
				}
				_, subjects, ok := bindingOf(o)
				if !ok || isBootstrap(o) {
					return
				}
				for i, s := range subjects {
					if s.Kind == rbacv1.ServiceAccountKind && s.Name == "default" {
						r.Report(Detail{Field: fmt.Sprintf("subjects[%d].name", i), Severity: Medium,
							Message: fmt.Sprintf("%s grants its role to the default service account of namespace %s", o.Kind, subjectNamespace(s, o))})
					}
				}
			}},
		{Rule: Rule{ID: "cis:5.1.6", Title: "Service account token mounted", Severity: Low, References: cisRefs("5.1.6"),
			Description: "A mounted token lets anyone who compromises the container call the API server as the workload's service account.",
			Remediation: "Set automountServiceAccountToken: false in the pod spec (or on the service account) unless the workload calls the API server."},
			Workload: func(w *Workload, inv *Inventory, r *Reporter) {
				if !tokenMounted(w, inv) {
					return
				}
				r.Add(w.SpecPath+".automountServiceAccountToken", "pods mount the token of service account %s", w.ServiceAccount())
			}},
	}
}

func subjectNamespace(s rbacv1.Subject, o *resource.Object) string {
	if s.Namespace != "" {
		return s.Namespace
	}
	return o.Namespace
}

// tokenMounted reports whether w's pods get a service account token: the
// pod's automountServiceAccountToken wins, then the service account's
// (when the input has it), and Kubernetes mounts by default.
func tokenMounted(w *Workload, inv *Inventory) bool {
	if v := w.Spec.AutomountServiceAccountToken; v != nil {
		return *v
	}
	if sa, ok := inv.ServiceAccount(w.Object.Namespace, w.ServiceAccount()); ok && sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}
