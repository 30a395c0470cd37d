package posture

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// FieldChange is one security-relevant field whose value differs between
// two versions of an object. Old and New are JSON values, or "<unset>".
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

func (c FieldChange) String() string { return c.Field + ": " + c.Old + " -> " + c.New }

// unset marks a field absent from one version.
const unset = "<unset>"

// Diff lists the security-relevant fields that differ between old and new,
// sorted by field, such as
// "spec.template.spec.containers[0].securityContext.privileged: false -> true".
// Either may be nil (a create or a delete). The admission webhook uses it
// to say what an update changes, not just what is wrong with the result.
func Diff(old, new *resource.Object) []FieldChange {
	var prefix string
	for _, o := range []*resource.Object{new, old} {
		if o == nil {
			continue
		}
		if w, ok := NewWorkload(o); ok {
			prefix = w.SpecPath
		}
	}
	a, b := flatten(old), flatten(new)
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareFields)
	var out []FieldChange
	for _, k := range keys {
		va, ok := a[k]
		if !ok {
			va = unset
		}
		vb, ok := b[k]
		if !ok {
			vb = unset
		}
		if va != vb && securityRelevant(k, prefix) {
			out = append(out, FieldChange{Field: k, Old: va, New: vb})
		}
	}
	return out
}

// flatten renders every leaf of o's object as path -> JSON value. Empty
// maps and lists are leaves too, so that "capabilities: {}" is visible.
func flatten(o *resource.Object) map[string]string {
	out := map[string]string{}
	if o == nil {
		return out
	}
	data, err := json.Marshal(o.Obj)
	if err != nil {
		return out
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return out
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch t := v.(type) {
		case map[string]any:
			if len(t) == 0 && path != "" {
				out[path] = "{}"
			}
			for k, x := range t {
				p := k
				if strings.ContainsAny(k, "./") {
					p = "[" + k + "]"
					if path != "" {
						p = path + p
					}
				} else if path != "" {
					p = path + "." + k
				}
				walk(p, x)
			}
		case []any:
			if len(t) == 0 {
				out[path] = "[]"
			}
			for i, x := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), x)
			}
		default:
			b, _ := json.Marshal(t)
			out[path] = string(b)
		}
	}
	walk("", v)
	delete(out, "metadata.creationTimestamp")
	return out
}

var diffIndexRE = regexp.MustCompile(`\[\d+\]`)

// podFields are the pod spec fields (list indices removed) whose changes
// matter to posture, as prefixes.
var podFields = []string{
	"hostNetwork", "hostPID", "hostIPC", "hostUsers", "securityContext", "serviceAccountName", "serviceAccount",
	"automountServiceAccountToken", "volumes", "os",
	"containers.securityContext", "containers.image", "containers.ports.hostPort", "containers.env.valueFrom.secretKeyRef",
	"containers.envFrom.secretRef", "containers.resources.limits", "containers.livenessProbe", "containers.readinessProbe",
	"containers.startupProbe", "containers.lifecycle",
}

// objectFields are the fields of non-workload kinds that matter, as
// prefixes; a bracketed key is a label or annotation.
var objectFields = []string{
	"rules", "roleRef", "subjects", "aggregationRule", // RBAC
	"automountServiceAccountToken",                                                      // ServiceAccount
	"metadata.labels[pod-security.kubernetes.io/", "metadata.labels[" + MeshLabel + "]", // Namespace
	"spec.podSelector", "spec.policyTypes", "spec.ingress", "spec.egress", // NetworkPolicy
	"spec.endpointSelector", "spec.enableDefaultDeny", "spec.ingressDeny", "spec.egressDeny", "specs", // Cilium
	"spec.selector", "spec.type", "spec.externalIPs", "spec.loadBalancerSourceRanges", // Service
}

func securityRelevant(field, podPrefix string) bool {
	f := diffIndexRE.ReplaceAllString(field, "")
	if podPrefix != "" {
		if rest, ok := strings.CutPrefix(f, podPrefix+"."); ok {
			rest = strings.NewReplacer("initContainers.", "containers.", "ephemeralContainers.", "containers.").Replace(rest)
			return slices.ContainsFunc(podFields, func(p string) bool {
				return rest == p || strings.HasPrefix(rest, p+".") || strings.HasPrefix(rest, p+"[")
			})
		}
		meta := strings.TrimSuffix(podPrefix, "spec") + "metadata.annotations["
		if strings.HasPrefix(f, meta+"container.apparmor.security.beta.kubernetes.io/") {
			return true
		}
	}
	return slices.ContainsFunc(objectFields, func(p string) bool {
		return f == p || strings.HasPrefix(f, p) && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "]") || strings.HasPrefix(f[len(p):], ".") || strings.HasPrefix(f[len(p):], "["))
	})
}
