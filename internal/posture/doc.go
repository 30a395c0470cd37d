// Package posture audits Kubernetes objects against the CIS Kubernetes
// Benchmark 1.9 (section 5), the Pod Security Standards (baseline and
// restricted, evaluated by Kubernetes' own k8s.io/pod-security-admission
// checks) and Rampart's own rules, and scores each workload's risk on KCCSS.
//
// Checks are pluggable: each registers a Rule (a stable ID, a title, a
// severity, the controls it implements and a remediation) with Register, and
// Audit runs every registered check over a set of decoded objects. One
// finding states one fact about one field of one object and names every
// standard that fact belongs to, so a privileged container is a single
// finding that cites both CIS 5.2.2 and the baseline "privileged" control.
//
// Audit is deterministic and has no side effects, so the CLI, the admission
// webhook (which calls it with one object and its namespace) and tests all
// share it.
package posture
