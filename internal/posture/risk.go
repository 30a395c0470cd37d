package posture

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Remediation is a protection whose presence lowers the impact of the risks
// it mitigates.
type Remediation string

// The remediations Rampart recognises on a workload.
const (
	RemSeccomp       Remediation = "seccomp"          // every container runs under RuntimeDefault or Localhost seccomp
	RemMAC           Remediation = "apparmor-selinux" // every container has an AppArmor profile or an SELinux type
	RemIngressPolicy Remediation = "ingress-policy"   // a network policy restricts ingress
	RemEgressPolicy  Remediation = "egress-policy"    // a network policy restricts egress
	RemReadOnlyRoot  Remediation = "read-only-root"   // every container's root filesystem is read-only
	RemMeshMTLS      Remediation = "mesh-mtls"        // the namespace is in Rampart's mTLS mesh
)

// Trigger makes a risk rule apply: a finding with ID on the workload, and,
// when FieldSuffix is set, at a field ending in it.
type Trigger struct {
	ID          string
	FieldSuffix string
}

// RiskRule is one KCCSS risk: the findings that reveal it, its impact on
// confidentiality, integrity and availability, its scope, attack vector
// and exploitability, and the remediations that lower its impact (each
// present remediation lowers C, I and A by one level: high to low, low to
// none).
type RiskRule struct {
	ID             string
	Title          string
	Triggers       []Trigger
	C, I, A        Impact
	Scope          Scope
	Vector         AttackVector
	Exploitability Exploitability
	Remediations   []Remediation
}

func on(ids ...string) []Trigger {
	var out []Trigger
	for _, id := range ids {
		id, suffix, _ := strings.Cut(id, "@")
		out = append(out, Trigger{ID: id, FieldSuffix: suffix})
	}
	return out
}

// RiskRules are the rules Rampart scores workloads with; docs/posture.md
// tabulates them.
var RiskRules = []RiskRule{
	{"privileged", "Privileged or HostProcess container", on("pss:privileged", "pss:windowsHostProcess"), HighImpact, HighImpact, HighImpact, ScopeHost, Local, ExploitHigh, nil},
	{"sensitive-host-mount", "Runtime socket or system directory mounted", on("rampart:sensitive-host-mount"), HighImpact, HighImpact, HighImpact, ScopeHost, Local, ExploitHigh, nil},
	{"host-pid", "Shares the host PID namespace", on("pss:hostNamespaces@.hostPID"), HighImpact, HighImpact, LowImpact, ScopeHost, Local, ExploitModerate, []Remediation{RemMAC}},
	{"host-network", "Shares the host network namespace", on("pss:hostNamespaces@.hostNetwork"), HighImpact, LowImpact, LowImpact, ScopeHost, Remote, ExploitModerate, nil},
	{"host-ipc", "Shares the host IPC namespace", on("pss:hostNamespaces@.hostIPC"), HighImpact, LowImpact, NoImpact, ScopeHost, Local, ExploitLow, []Remediation{RemMAC}},
	{"host-path", "Mounts a host path", on("pss:hostPathVolumes"), HighImpact, LowImpact, NoImpact, ScopeHost, Local, ExploitModerate, []Remediation{RemMAC}},
	{"dangerous-capabilities", "Adds non-default capabilities", on("pss:capabilities_baseline"), HighImpact, HighImpact, LowImpact, ScopeHost, Local, ExploitModerate, []Remediation{RemSeccomp, RemMAC}},
	{"privilege-escalation", "Allows privilege escalation", on("pss:allowPrivilegeEscalation"), LowImpact, HighImpact, NoImpact, ScopeHost, Local, ExploitLow, []Remediation{RemSeccomp, RemMAC}},
	{"runs-as-root", "May run as root", on("pss:runAsNonRoot", "pss:runAsUser"), LowImpact, HighImpact, LowImpact, ScopeHost, Local, ExploitModerate, []Remediation{RemSeccomp, RemMAC, RemReadOnlyRoot}},
	{"capabilities-kept", "Keeps default capabilities", on("pss:capabilities_restricted", "cis:5.2.9"), NoImpact, LowImpact, LowImpact, ScopeNone, Local, ExploitLow, []Remediation{RemSeccomp}},
	{"weak-isolation", "Kernel isolation weakened", on("pss:seccompProfile_baseline", "pss:seccompProfile_restricted", "pss:appArmorProfile", "pss:seLinuxOptions", "pss:procMount", "pss:procMount_restricted", "pss:sysctls"), LowImpact, LowImpact, LowImpact, ScopeHost, Local, ExploitLow, nil},
	{"restricted-volume", "Uses a volume type outside the restricted set", on("pss:restrictedVolumes"), LowImpact, LowImpact, NoImpact, ScopeHost, Local, ExploitLow, nil},
	{"host-port", "Binds a host port", on("pss:hostPorts"), LowImpact, LowImpact, LowImpact, ScopeHost, Remote, ExploitModerate, []Remediation{RemIngressPolicy}},
	{"host-probe", "Probe or hook reaches another host", on("pss:hostProbesAndHostLifecycle"), LowImpact, NoImpact, NoImpact, ScopeHost, Remote, ExploitLow, []Remediation{RemEgressPolicy}},
	{"no-limits", "No resource limits", on("rampart:resource-limits"), NoImpact, NoImpact, HighImpact, ScopeHost, Remote, ExploitLow, nil},
	{"writable-root", "Writable root filesystem", on("rampart:writable-root-fs"), NoImpact, LowImpact, NoImpact, ScopeNone, Local, ExploitLow, []Remediation{RemMAC}},
	{"secrets-in-env", "Secrets in environment variables", on("cis:5.4.1"), HighImpact, NoImpact, NoImpact, ScopeCluster, Local, ExploitLow, nil},
	{"api-token", "Service account token mounted", on("cis:5.1.6"), LowImpact, LowImpact, NoImpact, ScopeCluster, Remote, ExploitLow, []Remediation{RemEgressPolicy}},
	{"default-service-account", "Runs as the default service account", on("cis:5.1.5"), LowImpact, LowImpact, NoImpact, ScopeCluster, Remote, ExploitVeryLow, []Remediation{RemEgressPolicy}},
	{"open-network", "No network policy selects the pods", on("cis:5.3.2"), LowImpact, LowImpact, LowImpact, ScopeCluster, Remote, ExploitModerate, []Remediation{RemMeshMTLS}},
	{"no-mtls", "Traffic not protected by mTLS", on("rampart:mesh-disabled"), LowImpact, LowImpact, NoImpact, ScopeNone, Remote, ExploitLow, []Remediation{RemIngressPolicy}},
	{"mutable-image", "Image follows a mutable tag", on("rampart:image-mutable-tag"), LowImpact, HighImpact, NoImpact, ScopeCluster, Remote, ExploitVeryLow, nil},
}

// RuleContribution is one triggered risk rule's part in a workload's score.
type RuleContribution struct {
	Rule     string         `json:"rule"`
	Title    string         `json:"title"`
	Findings []string       `json:"findings"` // IDs of the findings that triggered it
	Base     [3]string      `json:"base"`     // C, I, A before remediations
	Applied  []Remediation  `json:"applied,omitempty"`
	Impact   [3]string      `json:"impact"` // C, I, A after remediations
	Scope    Scope          `json:"scope"`
	Vector   AttackVector   `json:"vector"`
	Exploit  Exploitability `json:"exploitability"`
	Score    float64        `json:"score"`
	Bucket   string         `json:"bucket"`
	Counted  bool           `json:"counted"` // the highest of its bucket
}

// WorkloadRisk is a workload's KCCSS score and how it was reached.
type WorkloadRisk struct {
	Object       ObjectRef          `json:"object"`
	File         string             `json:"file"`
	Line         int                `json:"line"`
	Score        float64            `json:"score"`
	Band         string             `json:"band"`
	Remediations []Remediation      `json:"remediations"`
	Rules        []RuleContribution `json:"rules"`
}

// ScoreWorkload scores w from its findings.
func ScoreWorkload(w *Workload, inv *Inventory, findings []Finding) WorkloadRisk {
	present := Remediations(w, inv)
	risk := WorkloadRisk{Object: w.Ref(), File: w.Object.Source.File, Line: w.Object.Source.Line, Remediations: present}
	best := map[string]int{}
	for _, rr := range RiskRules {
		var ids []string
		for _, f := range findings {
			if slices.ContainsFunc(rr.Triggers, func(t Trigger) bool {
				return t.ID == f.ID && strings.HasSuffix(f.Field, t.FieldSuffix)
			}) {
				ids = append(ids, f.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		slices.SortFunc(ids, compareIDs)
		var applied []Remediation
		for _, m := range rr.Remediations {
			if slices.Contains(present, m) {
				applied = append(applied, m)
			}
		}
		n := len(applied)
		c, i, a := rr.C.lower(n), rr.I.lower(n), rr.A.lower(n)
		score := round2(RuleScore(c, i, a, rr.Scope, rr.Vector, rr.Exploitability))
		rc := RuleContribution{
			Rule: rr.ID, Title: rr.Title, Findings: slices.Compact(ids),
			Base: [3]string{rr.C.String(), rr.I.String(), rr.A.String()}, Applied: applied,
			Impact: [3]string{c.String(), i.String(), a.String()},
			Scope:  rr.Scope, Vector: rr.Vector, Exploit: rr.Exploitability,
			Score: score, Bucket: bucketName(rr.Vector, rr.Scope),
		}
		if j, ok := best[rc.Bucket]; !ok || score > risk.Rules[j].Score {
			best[rc.Bucket] = len(risk.Rules)
		}
		risk.Rules = append(risk.Rules, rc)
	}
	var maxima []float64
	for _, j := range best {
		risk.Rules[j].Counted = true
	}
	for _, rc := range risk.Rules {
		if rc.Counted {
			maxima = append(maxima, rc.Score)
		}
	}
	slices.Sort(maxima)
	risk.Score = round2(CombineScores(maxima))
	risk.Band = Band(risk.Score)
	return risk
}

// Remediations lists the remediations present on w, in declaration order.
func Remediations(w *Workload, inv *Inventory) []Remediation {
	var out []Remediation
	cs := w.Containers()
	all := func(f func(Container) bool) bool {
		return len(cs) > 0 && !slices.ContainsFunc(cs, func(c Container) bool { return !f(c) })
	}
	pod := podSC(w.Spec)
	goodSeccomp := func(p *corev1.SeccompProfile) bool {
		return p != nil && (p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost)
	}
	if all(func(c Container) bool {
		if p := sc(c).SeccompProfile; p != nil {
			return goodSeccomp(p)
		}
		return goodSeccomp(pod.SeccompProfile)
	}) {
		out = append(out, RemSeccomp)
	}
	goodAppArmor := func(p *corev1.AppArmorProfile) bool {
		return p != nil && (p.Type == corev1.AppArmorProfileTypeRuntimeDefault || p.Type == corev1.AppArmorProfileTypeLocalhost)
	}
	if all(func(c Container) bool {
		if p := sc(c).AppArmorProfile; p != nil {
			return goodAppArmor(p)
		}
		if v, ok := w.Meta.Annotations[corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Container.Name]; ok {
			return v == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault || strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix)
		}
		if o := sc(c).SELinuxOptions; o != nil && o.Type != "" {
			return true
		}
		return goodAppArmor(pod.AppArmorProfile) || (pod.SELinuxOptions != nil && pod.SELinuxOptions.Type != "")
	}) {
		out = append(out, RemMAC)
	}
	cov := inv.Coverage(w)
	if cov.Ingress {
		out = append(out, RemIngressPolicy)
	}
	if cov.Egress {
		out = append(out, RemEgressPolicy)
	}
	if all(func(c Container) bool { v := sc(c).ReadOnlyRootFilesystem; return v != nil && *v }) {
		out = append(out, RemReadOnlyRoot)
	}
	if inv.MeshEnabled(w.Object.Namespace) {
		out = append(out, RemMeshMTLS)
	}
	return out
}
