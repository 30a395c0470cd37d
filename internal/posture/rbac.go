package posture

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rampartsec/rampart/internal/resource"
)

// grantControl is one dangerous permission CIS section 5.1 asks to
// minimise: a verb on a resource of an API group.
type grantControl struct {
	section   string
	what      string // "read Secrets", used in messages
	groups    []string
	resources []string
	verbs     []string // any of these; nil means any verb
	severity  Severity
}

var grantControls = []grantControl{
	{"5.1.2", "read Secrets", []string{""}, []string{"secrets"}, []string{"get", "list", "watch"}, Medium},
	{"5.1.4", "create Pods", []string{""}, []string{"pods"}, []string{"create"}, Medium},
	{"5.1.8", "bind or escalate roles", []string{"rbac.authorization.k8s.io"}, []string{"roles", "clusterroles"}, []string{"bind", "escalate"}, High},
	{"5.1.8", "impersonate users, groups or service accounts", []string{"", "authentication.k8s.io"}, []string{"users", "groups", "serviceaccounts", "userextras", "uids"}, []string{"impersonate"}, High},
	{"5.1.9", "create PersistentVolumes", []string{""}, []string{"persistentvolumes"}, []string{"create"}, Medium},
	{"5.1.10", "use the nodes/proxy subresource", []string{""}, []string{"nodes/proxy"}, nil, High},
	{"5.1.11", "approve CertificateSigningRequests", []string{"certificates.k8s.io"}, []string{"certificatesigningrequests/approval"}, []string{"update", "patch"}, High},
	{"5.1.12", "change admission webhook configurations", []string{"admissionregistration.k8s.io"}, []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"}, []string{"create", "update", "patch", "delete", "deletecollection"}, High},
	{"5.1.13", "create service account tokens", []string{""}, []string{"serviceaccounts/token"}, []string{"create"}, Medium},
}

// matches reports whether rule grants the control, and whether it does so
// only through a wildcard.
func (g grantControl) matches(rule rbacv1.PolicyRule) (grants, viaWildcard bool) {
	if len(rule.NonResourceURLs) > 0 && len(rule.Resources) == 0 {
		return false, false
	}
	group, gw := anyMatch(rule.APIGroups, g.groups, false)
	res, rw := anyMatch(rule.Resources, g.resources, true)
	verb, vw := true, false
	if g.verbs != nil {
		verb, vw = anyMatch(rule.Verbs, g.verbs, false)
	} else {
		verb = len(rule.Verbs) > 0
		vw = slices.Contains(rule.Verbs, rbacv1.VerbAll)
	}
	return group && res && verb, gw || rw || vw
}

// anyMatch reports whether have grants any of want, as RBAC matches it
// ("*" everything; with subresources, "*/scale" every scale subresource),
// and whether only a wildcard made it match.
func anyMatch(have, want []string, resources bool) (match, wildcard bool) {
	for _, w := range want {
		for _, h := range have {
			switch {
			case h == w:
				return true, false
			case h == "*":
				match, wildcard = true, true
			case resources && strings.HasPrefix(h, "*/") && strings.Contains(w, "/") && h[1:] == w[strings.IndexByte(w, '/'):]:
				match, wildcard = true, true
			}
		}
	}
	return match, wildcard
}

// isBootstrap reports whether an RBAC object is one Kubernetes creates for
// itself ("system:" names, or the rbac-defaults bootstrapping label); its
// grants are by design and auditing them only adds noise to live audits.
func isBootstrap(o *resource.Object) bool {
	m, ok := o.Obj.(metav1.Object)
	if !ok {
		return false
	}
	return strings.HasPrefix(o.Name, "system:") || m.GetLabels()["kubernetes.io/bootstrapping"] == "rbac-defaults"
}

func rulesOf(o *resource.Object) []rbacv1.PolicyRule {
	switch t := o.Obj.(type) {
	case *rbacv1.Role:
		return t.Rules
	case *rbacv1.ClusterRole:
		return t.Rules
	}
	return nil
}

func bindingOf(o *resource.Object) (rbacv1.RoleRef, []rbacv1.Subject, bool) {
	switch t := o.Obj.(type) {
	case *rbacv1.RoleBinding:
		return t.RoleRef, t.Subjects, true
	case *rbacv1.ClusterRoleBinding:
		return t.RoleRef, t.Subjects, true
	}
	return rbacv1.RoleRef{}, nil, false
}

// wildcardField names the first field of rule that holds "*".
func wildcardField(rule rbacv1.PolicyRule, i int) string {
	for _, f := range []struct {
		name string
		vals []string
	}{{"verbs", rule.Verbs}, {"resources", rule.Resources}, {"apiGroups", rule.APIGroups}} {
		if j := slices.Index(f.vals, "*"); j >= 0 {
			return fmt.Sprintf("rules[%d].%s[%d]", i, f.name, j)
		}
	}
	return fmt.Sprintf("rules[%d]", i)
}

func hasWildcard(rule rbacv1.PolicyRule) bool {
	return slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*")
}

// checkRoleRules reports, for a Role or ClusterRole, one finding per fact:
// a rule with a wildcard is one fact (cis:5.1.3) citing every control the
// wildcard grants; a rule that names a dangerous permission explicitly is
// one finding per control it grants.
func checkRoleRules(section string) func(*resource.Object, *Inventory, *Reporter) {
	return func(o *resource.Object, _ *Inventory, r *Reporter) {
		if isBootstrap(o) {
			return
		}
		for i, rule := range rulesOf(o) {
			wild := hasWildcard(rule)
			if section == "5.1.3" {
				if !wild {
					continue
				}
				refs := cisRefs("5.1.3")
				sev := Medium
				var grants []string
				for _, g := range grantControls {
					if ok, _ := g.matches(rule); ok {
						refs = append(refs, cisRefs(g.section)...)
						grants = append(grants, g.what)
						sev = max(sev, g.severity)
					}
				}
				msg := fmt.Sprintf("rule %d uses a wildcard (apiGroups %v, resources %v, verbs %v)", i, rule.APIGroups, rule.Resources, rule.Verbs)
				if len(grants) > 0 {
					msg += "; it grants: " + strings.Join(grants, ", ")
				}
				r.Report(Detail{Field: wildcardField(rule, i), Message: msg, Refs: refs, Severity: sev})
				continue
			}
			if wild {
				continue // reported once, as cis:5.1.3
			}
			for _, g := range grantControls {
				if g.section != section {
					continue
				}
				if ok, _ := g.matches(rule); ok {
					r.Report(Detail{Field: fmt.Sprintf("rules[%d].resources", i),
						Message: fmt.Sprintf("rule %d lets subjects %s (verbs %v on %v)", i, g.what, rule.Verbs, rule.Resources), Severity: g.severity})
				}
			}
		}
	}
}

func rbacChecks() []Check {
	var out []Check
	for _, s := range []struct {
		section, title, remediation string
		severity                    Severity
	}{
		{"5.1.2", "Role can read Secrets", "Grant get, list and watch on Secrets only to the workloads that need them, and by resourceNames where possible.", Medium},
		{"5.1.3", "Wildcard in Role rule", "Replace \"*\" in apiGroups, resources and verbs with the exact groups, resources and verbs needed.", Medium},
		{"5.1.4", "Role can create Pods", "Remove create on pods; let controllers create pods instead of people and workloads.", Medium},
		{"5.1.8", "Role can bind, escalate or impersonate", "Remove the bind, escalate and impersonate verbs from the rule.", High},
		{"5.1.9", "Role can create PersistentVolumes", "Remove create on persistentvolumes; provision storage through StorageClasses and PersistentVolumeClaims.", Medium},
		{"5.1.10", "Role can use the node proxy", "Remove access to nodes/proxy, which reaches the kubelet API directly.", High},
		{"5.1.11", "Role can approve certificate requests", "Remove update and patch on certificatesigningrequests/approval.", High},
		{"5.1.12", "Role can change admission webhooks", "Remove write access to validatingwebhookconfigurations and mutatingwebhookconfigurations.", High},
		{"5.1.13", "Role can create service account tokens", "Remove create on serviceaccounts/token.", Medium},
	} {
		out = append(out, Check{
			Rule: Rule{ID: "cis:" + s.section, Title: s.title, Severity: s.severity, References: cisRefs(s.section),
				Description: cisTitles[s.section] + ".", Remediation: s.remediation},
			Object: checkRoleRules(s.section),
		})
	}
	out = append(out,
		Check{
			Rule: Rule{ID: "cis:5.1.1", Title: "Binding to cluster-admin", Severity: High, References: cisRefs("5.1.1"),
				Description: "The cluster-admin ClusterRole grants every permission on every resource; a binding to it makes its subjects cluster administrators.",
				Remediation: "Bind a role with only the permissions the subjects need, and delete the binding to cluster-admin."},
			Object: func(o *resource.Object, _ *Inventory, r *Reporter) {
				ref, subjects, ok := bindingOf(o)
				if !ok || isBootstrap(o) || ref.Kind != "ClusterRole" || ref.Name != "cluster-admin" {
					return
				}
				r.Add("roleRef.name", "%s binds cluster-admin to %s", o.Kind, subjectList(subjects))
			},
		},
		Check{
			Rule: Rule{ID: "cis:5.1.7", Title: "Binding to system:masters", Severity: High, References: cisRefs("5.1.7"),
				Description: "Members of system:masters bypass RBAC entirely, and the group cannot be removed from a credential once issued.",
				Remediation: "Remove the system:masters subject; grant a dedicated group a least-privilege role instead."},
			Object: func(o *resource.Object, _ *Inventory, r *Reporter) {
				_, subjects, ok := bindingOf(o)
				if !ok || isBootstrap(o) {
					return
				}
				for i, s := range subjects {
					if s.Kind == rbacv1.GroupKind && s.Name == "system:masters" {
						r.Add(fmt.Sprintf("subjects[%d].name", i), "%s grants its role to the system:masters group", o.Kind)
					}
				}
			},
		},
	)
	return out
}

func subjectList(ss []rbacv1.Subject) string {
	if len(ss) == 0 {
		return "no subjects"
	}
	var parts []string
	for _, s := range ss {
		name := s.Name
		if s.Namespace != "" {
			name = s.Namespace + "/" + s.Name
		}
		parts = append(parts, s.Kind+" "+name)
	}
	return strings.Join(parts, ", ")
}
