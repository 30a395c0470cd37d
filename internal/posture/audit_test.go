package posture_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

func mustDecode(t *testing.T, yaml string) []*resource.Object {
	t.Helper()
	objs, err := resource.DecodeBytes("in.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

const sysAdminPod = `apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
spec:
  containers:
  - name: c
    image: app:1
    securityContext:
      capabilities:
        add: [SYS_ADMIN]
`

// TestOneFindingPerFact: a capability that PSS baseline, PSS restricted and
// CIS 5.2.9 all reject is one finding citing all three.
func TestOneFindingPerFact(t *testing.T) {
	rep := posture.Audit(mustDecode(t, sysAdminPod), posture.Options{})
	var at []posture.Finding
	for _, f := range rep.Findings {
		if f.Field == "spec.containers[0].securityContext.capabilities.add[0]" {
			at = append(at, f)
		}
	}
	if len(at) != 1 {
		t.Fatalf("%d findings at the added capability, want 1: %+v", len(at), at)
	}
	f := at[0]
	if f.ID != "pss:capabilities_baseline" || f.Severity != posture.High || f.Line != 12 {
		t.Errorf("finding = %s %s line %d, want pss:capabilities_baseline high line 12", f.ID, f.Severity, f.Line)
	}
	if want := []posture.Standard{posture.CIS, posture.PSSBaseline, posture.PSSRestricted}; !slices.Equal(f.Standards, want) {
		t.Errorf("standards = %v, want %v", f.Standards, want)
	}
}

// TestStandardFilter: --standard keeps findings citing a selected standard
// and never changes the risk score.
func TestStandardFilter(t *testing.T) {
	objs := mustDecode(t, sysAdminPod)
	all := posture.Audit(objs, posture.Options{})
	cis := posture.Audit(objs, posture.Options{Standards: []posture.Standard{posture.CIS}})
	if len(cis.Findings) == 0 || len(cis.Findings) >= len(all.Findings) {
		t.Fatalf("cis kept %d of %d findings", len(cis.Findings), len(all.Findings))
	}
	for _, f := range cis.Findings {
		if !slices.Contains(f.Standards, posture.CIS) {
			t.Errorf("%s does not cite CIS", f.ID)
		}
	}
	if all.Workloads[0].Score != cis.Workloads[0].Score {
		t.Errorf("score changed with the filter: %v vs %v", all.Workloads[0].Score, cis.Workloads[0].Score)
	}
}

// TestRemediationsLowerImpact: seccomp and AppArmor each take the impact
// of privilege escalation one level down, to none.
func TestRemediationsLowerImpact(t *testing.T) {
	const pod = `apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: shop
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
    appArmorProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: app:1
    securityContext:
      allowPrivilegeEscalation: true
`
	rep := posture.Audit(mustDecode(t, pod), posture.Options{})
	risk := rep.Workloads[0]
	for _, want := range []posture.Remediation{posture.RemSeccomp, posture.RemMAC} {
		if !slices.Contains(risk.Remediations, want) {
			t.Errorf("remediations %v lack %s", risk.Remediations, want)
		}
	}
	i := slices.IndexFunc(risk.Rules, func(r posture.RuleContribution) bool { return r.Rule == "privilege-escalation" })
	if i < 0 {
		t.Fatalf("privilege-escalation did not apply: %+v", risk.Rules)
	}
	rc := risk.Rules[i]
	// base low/high/none; two remediations: none/none/none, leaving 9 × 0.55 × 0.1.
	if rc.Base != [3]string{"low", "high", "none"} || rc.Impact != [3]string{"none", "none", "none"} || rc.Score != 0.5 {
		t.Errorf("privilege-escalation = base %v impact %v score %v, want low/high/none -> none/none/none, 0.5", rc.Base, rc.Impact, rc.Score)
	}
}

// TestAuditOneObjectAndNamespace is the webhook's use: the object under
// review with its Namespace, whose labels decide mesh findings.
func TestAuditOneObjectAndNamespace(t *testing.T) {
	const ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {rampart.io/mesh: enabled, pod-security.kubernetes.io/enforce: restricted}\n---\n"
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec:
  containers:
  - name: c
    image: app:1
    envFrom:
    - secretRef: {name: creds}
`
	has := func(r posture.Report, id string) bool {
		return slices.ContainsFunc(r.Findings, func(f posture.Finding) bool { return f.ID == id })
	}
	if rep := posture.Audit(mustDecode(t, pod), posture.Options{}); !has(rep, "rampart:mesh-disabled") {
		t.Error("without its Namespace, the pod's namespace is not known to be in the mesh")
	}
	if rep := posture.Audit(mustDecode(t, ns+pod), posture.Options{}); has(rep, "rampart:mesh-disabled") {
		t.Error("the Namespace enables the mesh, yet mesh-disabled was reported")
	}
}

// TestTableColor: severities are coloured only when asked (the CLI asks
// when stdout is a terminal).
func TestTableColor(t *testing.T) {
	rep := posture.Audit(mustDecode(t, sysAdminPod), posture.Options{})
	var plain, color strings.Builder
	if err := posture.WriteTable(&plain, rep, false); err != nil {
		t.Fatal(err)
	}
	if err := posture.WriteTable(&color, rep, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("plain table has escape sequences")
	}
	for _, want := range []string{"\x1b[31mHIGH  \x1b[0m", "\x1b[33mMEDIUM\x1b[0m", "\x1b[36mLOW   \x1b[0m"} {
		if !strings.Contains(color.String(), want) {
			t.Errorf("coloured table lacks %q", want)
		}
	}
}
