package posture

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// pssURL documents every Pod Security Standards control.
const pssURL = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"

// pssMeta is what Rampart adds to one of Kubernetes' checks: the control's
// title, a severity, the CIS sections it implements and a remediation. The
// verdict itself always comes from the library.
type pssMeta struct {
	title, control, remediation string
	severity                    Severity
	cis                         []string
	fact                        string
	locate                      locator
}

// locator names the fields of a pod that make a check fail. It runs only
// after the library has failed the pod, and it asks the library again about
// a minimal pod holding one field at a time where the allowed values are a
// list that only the library should know (capabilities, sysctls, volume
// types), so that Rampart never disagrees with Kubernetes about a verdict.
type locator func(p *pssProbe) []blame

// blame is one field a check failed on.
type blame struct {
	field string
	msg   string
	cis   []string // when set, replaces the rule's CIS sections for this field
}

var pssMetas = map[policy.CheckID]pssMeta{
	"hostNamespaces": {title: "Host namespaces shared", control: "Host Namespaces", severity: High,
		cis: []string{"5.2.3", "5.2.4", "5.2.5"}, locate: locateHostNamespaces,
		remediation: "Remove hostNetwork, hostPID and hostIPC (or set them to false)."},
	"privileged": {title: "Privileged container", control: "Privileged Containers", severity: High,
		cis: []string{"5.2.2"}, locate: locatePrivileged,
		remediation: "Remove securityContext.privileged or set it to false; grant the few capabilities the container needs instead."},
	"capabilities_baseline": {title: "Non-default capability added", control: "Capabilities", severity: High,
		cis: []string{"5.2.9"}, fact: "capability-added", locate: locateCapabilitiesBaseline,
		remediation: "Remove the capability from securityContext.capabilities.add."},
	"hostPathVolumes": {title: "HostPath volume", control: "HostPath Volumes", severity: Medium,
		cis: []string{"5.2.12"}, locate: locateHostPath,
		remediation: "Replace the hostPath volume with a persistentVolumeClaim, configMap, secret or emptyDir volume."},
	"hostPorts": {title: "Host port", control: "Host Ports", severity: Medium,
		cis: []string{"5.2.13"}, locate: locateHostPorts,
		remediation: "Remove hostPort and expose the container through a Service."},
	"appArmorProfile": {title: "AppArmor disabled or overridden", control: "AppArmor", severity: Medium,
		locate:      locateAppArmor,
		remediation: "Use the RuntimeDefault or a Localhost AppArmor profile, or leave appArmorProfile unset."},
	"seLinuxOptions": {title: "SELinux options overridden", control: "SELinux", severity: Medium,
		locate:      locateSELinux,
		remediation: "Leave seLinuxOptions.user and role unset and use one of the container_t, container_init_t, container_kvm_t or container_engine_t types."},
	"procMount": {title: "Unmasked /proc", control: "/proc Mount Type", severity: Medium,
		fact: "procMount", locate: locateProcMount,
		remediation: "Remove securityContext.procMount or set it to Default."},
	"seccompProfile_baseline": {title: "Seccomp disabled", control: "Seccomp", severity: Medium,
		cis: []string{"5.7.2"}, fact: "seccomp", locate: locateSeccompBaseline,
		remediation: "Set securityContext.seccompProfile.type to RuntimeDefault."},
	"sysctls": {title: "Unsafe sysctl", control: "Sysctls", severity: Medium,
		locate:      locateSysctls,
		remediation: "Remove the sysctl from securityContext.sysctls, or tune it on the node."},
	"windowsHostProcess": {title: "Windows HostProcess container", control: "HostProcess", severity: High,
		cis: []string{"5.2.11"}, locate: locateHostProcess,
		remediation: "Remove securityContext.windowsOptions.hostProcess or set it to false."},
	"hostProbesAndHostLifecycle": {title: "Probe or lifecycle hook targets another host", control: "Host Probes / Lifecycle Hooks", severity: Medium,
		locate:      locateHostProbes,
		remediation: "Remove the host field from the probe or lifecycle handler so that it targets the pod itself."},
	"allowPrivilegeEscalation": {title: "Privilege escalation allowed", control: "Privilege Escalation", severity: Medium,
		cis: []string{"5.2.6"}, locate: locateAllowPrivilegeEscalation,
		remediation: "Set securityContext.allowPrivilegeEscalation to false."},
	"capabilities_restricted": {title: "Capabilities not dropped", control: "Capabilities", severity: Medium,
		cis: []string{"5.2.8", "5.2.9", "5.2.10"}, fact: "capability-added", locate: locateCapabilitiesRestricted,
		remediation: `Set securityContext.capabilities.drop to ["ALL"] and add back only NET_BIND_SERVICE if needed.`},
	"procMount_restricted": {title: "Unmasked /proc", control: "/proc Mount Type", severity: Medium,
		fact: "procMount", locate: locateProcMount,
		remediation: "Remove securityContext.procMount or set it to Default."},
	"restrictedVolumes": {title: "Volume type not allowed", control: "Volume Types", severity: Medium,
		locate:      locateRestrictedVolumes,
		remediation: "Use only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes."},
	"runAsNonRoot": {title: "Container may run as root", control: "Running as Non-root", severity: Medium,
		cis: []string{"5.2.7"}, locate: locateRunAsNonRoot,
		remediation: "Set securityContext.runAsNonRoot to true on the pod (or on every container) and use an image with a non-root USER."},
	"runAsUser": {title: "Container runs as UID 0", control: "Running as Non-root user", severity: High,
		cis: []string{"5.2.7"}, locate: locateRunAsUser,
		remediation: "Set securityContext.runAsUser to a non-zero UID, or remove it and set runAsNonRoot to true."},
	"seccompProfile_restricted": {title: "Seccomp profile not set", control: "Seccomp", severity: Medium,
		cis: []string{"5.7.2"}, fact: "seccomp", locate: locateSeccompRestricted,
		remediation: "Set spec.securityContext.seccompProfile.type to RuntimeDefault (or Localhost with a profile)."},
}

// pssCheck is one of Kubernetes' checks at the latest policy version.
type pssCheck struct {
	id         policy.CheckID
	level      api.Level
	run        policy.CheckPodFn
	restricted bool // part of the restricted profile (baseline checks unless overridden)
}

// pssChecks returns Kubernetes' default checks at their latest version, in
// the library's order: baseline checks first, then restricted, each by ID.
func pssChecks() []pssCheck {
	checks := policy.DefaultChecks()
	overridden := map[policy.CheckID]bool{}
	for _, c := range checks {
		for _, id := range c.Versions[len(c.Versions)-1].OverrideCheckIDs {
			overridden[id] = true
		}
	}
	var out []pssCheck
	for _, c := range checks {
		v := c.Versions[len(c.Versions)-1]
		out = append(out, pssCheck{
			id:         c.ID,
			level:      c.Level,
			run:        v.CheckPod,
			restricted: c.Level == api.LevelRestricted || !overridden[c.ID],
		})
	}
	slices.SortStableFunc(out, func(a, b pssCheck) int {
		if a.level != b.level {
			if a.level == api.LevelBaseline {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a.id), string(b.id))
	})
	return out
}

// PSSCheckIDs lists the IDs of Kubernetes' checks Rampart runs, for tests
// that compare Rampart's verdicts with the library's evaluator.
func PSSCheckIDs() []string {
	var out []string
	for _, c := range pssChecks() {
		out = append(out, "pss:"+string(c.id))
	}
	return out
}

func cisRefs(sections ...string) []Reference {
	var out []Reference
	for _, s := range sections {
		out = append(out, Reference{Standard: CIS, Control: s, Title: cisTitles[s], URL: cisURL})
	}
	return out
}

func pssCheckFor(c pssCheck) Check {
	m, ok := pssMetas[c.id]
	if !ok {
		// A check added by a newer library: still run it, with a title
		// derived from its ID, rather than silently skipping it.
		m = pssMeta{title: "Pod Security Standards check " + string(c.id), control: string(c.id), severity: Medium,
			remediation: "See the Pod Security Standards for the allowed values."}
	}
	var refs []Reference
	if c.level == api.LevelBaseline {
		refs = append(refs, Reference{Standard: PSSBaseline, Control: string(c.id), Title: m.control, URL: pssURL + "#baseline"})
	}
	if c.restricted {
		refs = append(refs, Reference{Standard: PSSRestricted, Control: string(c.id), Title: m.control, URL: pssURL + "#restricted"})
	}
	pssRefs := refs
	refs = append(refs, cisRefs(m.cis...)...)
	level := "baseline"
	if c.level == api.LevelRestricted {
		level = "restricted"
	}
	return Check{
		Rule: Rule{
			ID:          "pss:" + string(c.id),
			Title:       m.title,
			Description: fmt.Sprintf("Kubernetes' Pod Security Standards %s check %q (%s), evaluated by k8s.io/pod-security-admission at the latest policy version.", level, c.id, m.control),
			Severity:    m.severity,
			References:  refs,
			Remediation: m.remediation,
			Fact:        m.fact,
		},
		Workload: func(w *Workload, _ *Inventory, r *Reporter) {
			res := c.run(w.Meta, w.Spec)
			if res.Allowed {
				return
			}
			p := &pssProbe{w: w, run: c.run}
			var bs []blame
			if m.locate != nil {
				bs = m.locate(p)
			}
			if len(bs) == 0 {
				detail := res.ForbiddenReason
				if res.ForbiddenDetail != "" {
					detail += " (" + res.ForbiddenDetail + ")"
				}
				bs = []blame{{field: w.SpecPath, msg: detail}}
			}
			for _, b := range bs {
				fieldRefs := refs
				if b.cis != nil {
					fieldRefs = append(slices.Clone(pssRefs), cisRefs(b.cis...)...)
				}
				r.Report(Detail{Field: b.field, Message: b.msg, Refs: fieldRefs})
			}
		},
	}
}

// pssProbe asks one check about minimal pods derived from a workload.
type pssProbe struct {
	w   *Workload
	run policy.CheckPodFn
}

// base returns an empty pod spec keeping the fields that change how checks
// read the rest: the OS (Windows pods are exempt from Linux-only checks)
// and hostUsers (user-namespaced pods are exempt from some).
func (p *pssProbe) base() *corev1.PodSpec {
	return &corev1.PodSpec{OS: p.w.Spec.OS, HostUsers: p.w.Spec.HostUsers}
}

// fails runs the check on spec with no pod metadata.
func (p *pssProbe) fails(spec *corev1.PodSpec) bool {
	return !p.run(&metav1.ObjectMeta{}, spec).Allowed
}

// failsContainer runs the check on a pod holding only c, with the pod-level
// security context podSC.
func (p *pssProbe) failsContainer(c corev1.Container, podSC *corev1.PodSecurityContext) bool {
	spec := p.base()
	spec.SecurityContext = podSC
	spec.Containers = []corev1.Container{c}
	return p.fails(spec)
}

func podSC(s *corev1.PodSpec) *corev1.PodSecurityContext {
	if s.SecurityContext == nil {
		return &corev1.PodSecurityContext{}
	}
	return s.SecurityContext
}

func sc(c Container) *corev1.SecurityContext {
	if c.SecurityContext == nil {
		return &corev1.SecurityContext{}
	}
	return c.SecurityContext
}

func locateHostNamespaces(p *pssProbe) []blame {
	s, path := p.w.Spec, p.w.SpecPath
	var out []blame
	if s.HostNetwork {
		out = append(out, blame{path + ".hostNetwork", "pod shares the host's network namespace (hostNetwork: true)", []string{"5.2.5"}})
	}
	if s.HostPID {
		out = append(out, blame{path + ".hostPID", "pod shares the host's process ID namespace (hostPID: true)", []string{"5.2.3"}})
	}
	if s.HostIPC {
		out = append(out, blame{path + ".hostIPC", "pod shares the host's IPC namespace (hostIPC: true)", []string{"5.2.4"}})
	}
	return out
}

func locatePrivileged(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		if sc(c).Privileged != nil && p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{Privileged: sc(c).Privileged}}, nil) {
			out = append(out, blame{field: c.Path + ".securityContext.privileged", msg: c.Name() + " runs privileged"})
		}
	}
	return out
}

func capContainer(c Container, add, drop []corev1.Capability) corev1.Container {
	return corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: add, Drop: drop}}}
}

func locateCapabilitiesBaseline(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		if sc(c).Capabilities == nil {
			continue
		}
		for i, cp := range sc(c).Capabilities.Add {
			if p.failsContainer(capContainer(c, []corev1.Capability{cp}, nil), nil) {
				out = append(out, blame{field: fmt.Sprintf("%s.securityContext.capabilities.add[%d]", c.Path, i),
					msg: fmt.Sprintf("%s adds capability %s, which is not in the baseline's allowed list", c.Name(), cp), cis: capCIS(cp)})
			}
		}
	}
	return out
}

// capCIS returns the CIS sections an added capability falls under: every
// addition is 5.2.9, and NET_RAW is also 5.2.8.
func capCIS(cp corev1.Capability) []string {
	if normCap(cp) == "NET_RAW" {
		return []string{"5.2.8", "5.2.9"}
	}
	return []string{"5.2.9"}
}

func normCap(cp corev1.Capability) string {
	return strings.TrimPrefix(strings.ToUpper(string(cp)), "CAP_")
}

func locateCapabilitiesRestricted(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		var add, drop []corev1.Capability
		if caps := sc(c).Capabilities; caps != nil {
			add, drop = caps.Add, caps.Drop
		}
		if p.failsContainer(capContainer(c, nil, drop), nil) {
			cis := []string{"5.2.10"}
			if !slices.ContainsFunc(drop, func(cp corev1.Capability) bool { return normCap(cp) == "ALL" || normCap(cp) == "NET_RAW" }) {
				cis = []string{"5.2.8", "5.2.10"}
			}
			out = append(out, blame{field: c.Path + ".securityContext.capabilities.drop",
				msg: c.Name() + ` does not drop ALL capabilities`, cis: cis})
		}
		for i, cp := range add {
			if p.failsContainer(capContainer(c, []corev1.Capability{cp}, []corev1.Capability{"ALL"}), nil) {
				out = append(out, blame{field: fmt.Sprintf("%s.securityContext.capabilities.add[%d]", c.Path, i),
					msg: fmt.Sprintf("%s adds capability %s; the restricted profile allows only NET_BIND_SERVICE", c.Name(), cp), cis: capCIS(cp)})
			}
		}
	}
	return out
}

func locateHostPath(p *pssProbe) []blame {
	var out []blame
	for i, v := range p.w.Spec.Volumes {
		if v.HostPath != nil {
			out = append(out, blame{field: fmt.Sprintf("%s.volumes[%d].hostPath", p.w.SpecPath, i),
				msg: fmt.Sprintf("volume %q mounts host path %s", v.Name, v.HostPath.Path)})
		}
	}
	return out
}

func locateHostPorts(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		for j, port := range c.Ports {
			if port.HostPort != 0 {
				out = append(out, blame{field: fmt.Sprintf("%s.ports[%d].hostPort", c.Path, j),
					msg: fmt.Sprintf("%s binds host port %d", c.Name(), port.HostPort)})
			}
		}
	}
	return out
}

func locateAppArmor(p *pssProbe) []blame {
	var out []blame
	w := p.w
	if prof := podSC(w.Spec).AppArmorProfile; prof != nil {
		spec := p.base()
		spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: prof}
		if p.fails(spec) {
			out = append(out, blame{field: w.SpecPath + ".securityContext.appArmorProfile.type", msg: fmt.Sprintf("pod sets AppArmor profile type %s", prof.Type)})
		}
	}
	for _, c := range w.Containers() {
		if prof := sc(c).AppArmorProfile; prof != nil && p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{AppArmorProfile: prof}}, nil) {
			out = append(out, blame{field: c.Path + ".securityContext.appArmorProfile.type", msg: fmt.Sprintf("%s sets AppArmor profile type %s", c.Name(), prof.Type)})
		}
	}
	for _, k := range sortedKeys(w.Meta.Annotations) {
		if !strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) {
			continue
		}
		meta := &metav1.ObjectMeta{Annotations: map[string]string{k: w.Meta.Annotations[k]}}
		if !p.run(meta, p.base()).Allowed {
			out = append(out, blame{field: w.MetaPath + ".annotations[" + k + "]", msg: fmt.Sprintf("annotation sets AppArmor profile %s", w.Meta.Annotations[k])})
		}
	}
	return out
}

func locateSELinux(p *pssProbe) []blame {
	var out []blame
	w := p.w
	if o := podSC(w.Spec).SELinuxOptions; o != nil {
		spec := p.base()
		spec.SecurityContext = &corev1.PodSecurityContext{SELinuxOptions: o}
		if p.fails(spec) {
			out = append(out, blame{field: w.SpecPath + ".securityContext.seLinuxOptions", msg: "pod sets forbidden SELinux options " + seLinuxString(o)})
		}
	}
	for _, c := range w.Containers() {
		if o := sc(c).SELinuxOptions; o != nil && p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{SELinuxOptions: o}}, nil) {
			out = append(out, blame{field: c.Path + ".securityContext.seLinuxOptions", msg: c.Name() + " sets forbidden SELinux options " + seLinuxString(o)})
		}
	}
	return out
}

func seLinuxString(o *corev1.SELinuxOptions) string {
	var parts []string
	for _, kv := range [][2]string{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func locateProcMount(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		if pm := sc(c).ProcMount; pm != nil && p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{ProcMount: pm}}, nil) {
			out = append(out, blame{field: c.Path + ".securityContext.procMount", msg: fmt.Sprintf("%s sets procMount %s", c.Name(), *pm)})
		}
	}
	return out
}

func locateSeccompBaseline(p *pssProbe) []blame {
	var out []blame
	w := p.w
	if prof := podSC(w.Spec).SeccompProfile; prof != nil {
		spec := p.base()
		spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: prof}
		if p.fails(spec) {
			out = append(out, blame{field: w.SpecPath + ".securityContext.seccompProfile.type", msg: fmt.Sprintf("pod sets seccomp profile %s", prof.Type)})
		}
	}
	for _, c := range w.Containers() {
		if prof := sc(c).SeccompProfile; prof != nil && p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{SeccompProfile: prof}}, nil) {
			out = append(out, blame{field: c.Path + ".securityContext.seccompProfile.type", msg: fmt.Sprintf("%s sets seccomp profile %s", c.Name(), prof.Type)})
		}
	}
	return out
}

func locateSeccompRestricted(p *pssProbe) []blame {
	var out []blame
	w := p.w
	pod := podSC(w.Spec).SeccompProfile
	podOK := false
	if pod != nil {
		spec := p.base()
		spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: pod}
		spec.Containers = []corev1.Container{{Name: "probe"}}
		if p.fails(spec) {
			out = append(out, blame{field: w.SpecPath + ".securityContext.seccompProfile.type", msg: fmt.Sprintf("pod sets seccomp profile %s; restricted requires RuntimeDefault or Localhost", pod.Type)})
		} else {
			podOK = true
		}
	}
	var inherited *corev1.PodSecurityContext
	if podOK {
		inherited = &corev1.PodSecurityContext{SeccompProfile: pod}
	}
	for _, c := range w.Containers() {
		prof := sc(c).SeccompProfile
		if prof == nil && pod != nil {
			continue // inherits the pod's profile, blamed above if bad
		}
		if !p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{SeccompProfile: prof}}, inherited) {
			continue
		}
		if prof != nil {
			out = append(out, blame{field: c.Path + ".securityContext.seccompProfile.type", msg: fmt.Sprintf("%s sets seccomp profile %s; restricted requires RuntimeDefault or Localhost", c.Name(), prof.Type)})
		} else {
			out = append(out, blame{field: c.Path + ".securityContext.seccompProfile", msg: c.Name() + " has no seccomp profile, and the pod sets none for it to inherit"})
		}
	}
	return out
}

func locateSysctls(p *pssProbe) []blame {
	var out []blame
	for i, s := range podSC(p.w.Spec).Sysctls {
		spec := p.base()
		spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{s}}
		if p.fails(spec) {
			out = append(out, blame{field: fmt.Sprintf("%s.securityContext.sysctls[%d]", p.w.SpecPath, i), msg: fmt.Sprintf("pod sets sysctl %s, which is not in the safe set", s.Name)})
		}
	}
	return out
}

func locateHostProcess(p *pssProbe) []blame {
	var out []blame
	isTrue := func(o *corev1.WindowsSecurityContextOptions) bool {
		return o != nil && o.HostProcess != nil && *o.HostProcess
	}
	if isTrue(podSC(p.w.Spec).WindowsOptions) {
		out = append(out, blame{field: p.w.SpecPath + ".securityContext.windowsOptions.hostProcess", msg: "pod runs as a Windows HostProcess pod"})
	}
	for _, c := range p.w.Containers() {
		if isTrue(sc(c).WindowsOptions) {
			out = append(out, blame{field: c.Path + ".securityContext.windowsOptions.hostProcess", msg: c.Name() + " runs as a Windows HostProcess container"})
		}
	}
	return out
}

func locateHostProbes(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		handlers := []struct {
			name string
			ctr  corev1.Container
		}{
			{"livenessProbe", corev1.Container{LivenessProbe: c.LivenessProbe}},
			{"readinessProbe", corev1.Container{ReadinessProbe: c.ReadinessProbe}},
			{"startupProbe", corev1.Container{StartupProbe: c.StartupProbe}},
		}
		if c.Lifecycle != nil {
			handlers = append(handlers,
				struct {
					name string
					ctr  corev1.Container
				}{"lifecycle.postStart", corev1.Container{Lifecycle: &corev1.Lifecycle{PostStart: c.Lifecycle.PostStart}}},
				struct {
					name string
					ctr  corev1.Container
				}{"lifecycle.preStop", corev1.Container{Lifecycle: &corev1.Lifecycle{PreStop: c.Lifecycle.PreStop}}})
		}
		for _, h := range handlers {
			h.ctr.Name = c.Container.Name
			if p.failsContainer(h.ctr, nil) {
				out = append(out, blame{field: c.Path + "." + h.name, msg: fmt.Sprintf("%s's %s targets a host other than the pod", c.Name(), h.name)})
			}
		}
	}
	return out
}

func locateAllowPrivilegeEscalation(p *pssProbe) []blame {
	var out []blame
	for _, c := range p.w.Containers() {
		ape := sc(c).AllowPrivilegeEscalation
		if !p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ape}}, nil) {
			continue
		}
		msg := c.Name() + " does not set allowPrivilegeEscalation: false"
		if ape != nil {
			msg = c.Name() + " sets allowPrivilegeEscalation: true"
		}
		out = append(out, blame{field: c.Path + ".securityContext.allowPrivilegeEscalation", msg: msg})
	}
	return out
}

func locateRestrictedVolumes(p *pssProbe) []blame {
	var out []blame
	for i, v := range p.w.Spec.Volumes {
		spec := p.base()
		spec.Volumes = []corev1.Volume{v}
		if p.fails(spec) {
			out = append(out, blame{field: fmt.Sprintf("%s.volumes[%d]", p.w.SpecPath, i), msg: fmt.Sprintf("volume %q has type %s, which the restricted profile does not allow", v.Name, volumeType(v))})
		}
	}
	return out
}

// volumeType names the volume source that is set, as in the API ("hostPath").
func volumeType(v corev1.Volume) string {
	s := v.VolumeSource
	for name, set := range map[string]bool{
		"hostPath": s.HostPath != nil, "gcePersistentDisk": s.GCEPersistentDisk != nil, "awsElasticBlockStore": s.AWSElasticBlockStore != nil,
		"gitRepo": s.GitRepo != nil, "nfs": s.NFS != nil, "iscsi": s.ISCSI != nil, "glusterfs": s.Glusterfs != nil, "rbd": s.RBD != nil,
		"flexVolume": s.FlexVolume != nil, "cinder": s.Cinder != nil, "cephfs": s.CephFS != nil, "flocker": s.Flocker != nil, "fc": s.FC != nil,
		"azureFile": s.AzureFile != nil, "vsphereVolume": s.VsphereVolume != nil, "quobyte": s.Quobyte != nil, "azureDisk": s.AzureDisk != nil,
		"photonPersistentDisk": s.PhotonPersistentDisk != nil, "portworxVolume": s.PortworxVolume != nil, "scaleIO": s.ScaleIO != nil, "storageos": s.StorageOS != nil,
	} {
		if set {
			return name
		}
	}
	return "unknown"
}

func locateRunAsNonRoot(p *pssProbe) []blame {
	var out []blame
	w := p.w
	pod := podSC(w.Spec).RunAsNonRoot
	if pod != nil && !*pod {
		out = append(out, blame{field: w.SpecPath + ".securityContext.runAsNonRoot", msg: "pod sets runAsNonRoot: false"})
	}
	var inherited *corev1.PodSecurityContext
	if pod != nil && *pod {
		inherited = &corev1.PodSecurityContext{RunAsNonRoot: pod}
	}
	for _, c := range w.Containers() {
		v := sc(c).RunAsNonRoot
		if !p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{RunAsNonRoot: v}}, inherited) {
			continue
		}
		msg := c.Name() + " sets runAsNonRoot: false"
		if v == nil {
			msg = c.Name() + " does not set runAsNonRoot: true, and neither does the pod"
		}
		out = append(out, blame{field: c.Path + ".securityContext.runAsNonRoot", msg: msg})
	}
	return out
}

func locateRunAsUser(p *pssProbe) []blame {
	var out []blame
	w := p.w
	if u := podSC(w.Spec).RunAsUser; u != nil {
		spec := p.base()
		spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: u}
		if p.fails(spec) {
			out = append(out, blame{field: w.SpecPath + ".securityContext.runAsUser", msg: "pod sets runAsUser: 0"})
		}
	}
	for _, c := range w.Containers() {
		if u := sc(c).RunAsUser; u != nil && p.failsContainer(corev1.Container{Name: c.Container.Name, SecurityContext: &corev1.SecurityContext{RunAsUser: u}}, nil) {
			out = append(out, blame{field: c.Path + ".securityContext.runAsUser", msg: c.Name() + " sets runAsUser: 0"})
		}
	}
	return out
}
