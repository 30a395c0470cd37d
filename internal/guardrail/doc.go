// Package guardrail is Rampart's validating admission webhook. It judges
// each CREATE and UPDATE of a workload (Pod, Deployment, StatefulSet,
// DaemonSet, ReplicaSet, Job, CronJob) or RBAC object (Role, ClusterRole,
// RoleBinding, ClusterRoleBinding) with the same checks as `rampart audit`
// (package posture), under a policy that each namespace chooses with labels
// in the style of Pod Security Admission:
//
//	guardrail.rampart.io/enforce: restricted   # deny what violates the level
//	guardrail.rampart.io/warn: rampart         # allow, with warnings
//	guardrail.rampart.io/audit: score:7        # allow, with audit annotations
//
// A request the webhook cannot read is denied with a 400 AdmissionReview,
// never answered with a bare HTTP error, so that the API server shows the
// user why (the webhook is registered with failurePolicy Fail).
//
// The files split the concerns: policy.go parses the labels and defines the
// levels, review.go decodes and answers AdmissionReviews, evaluate.go
// decides, handler.go is the HTTP endpoint, cluster.go the informer-backed
// view of namespaces, certs.go the serving certificates and webhook.go the
// ValidatingWebhookConfiguration.
package guardrail
