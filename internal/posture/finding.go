package posture

import (
	"fmt"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// ObjectRef names the object a finding is about.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func refOf(o *resource.Object) ObjectRef {
	return ObjectRef{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}

// String returns "Kind/namespace/name", or "Kind/name" when cluster-scoped,
// the form --explain accepts.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Finding is one fact about one field of one object. Field is the path in
// the form Kubernetes prints ("spec.template.spec.containers[0].securityContext.privileged"),
// even when the field is absent from the manifest: Line then points at its
// nearest ancestor that is present.
type Finding struct {
	ID          string      `json:"id"`
	Title       string      `json:"title"`
	Severity    Severity    `json:"severity"`
	Standards   []Standard  `json:"standards"`
	References  []Reference `json:"references"`
	Object      ObjectRef   `json:"object"`
	Field       string      `json:"field"`
	File        string      `json:"file"`
	Line        int         `json:"line"`
	Message     string      `json:"message"`
	Remediation string      `json:"remediation"`

	fact     string
	objIndex int // position of the object in the input, for ordering
}

// Location returns "file:line", or the file alone when the line is unknown.
func (f Finding) Location() string {
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return f.File
}

// Reporter collects the findings of one check on one object. Checks call
// Add with the field they blame; the reporter fills in everything the rule
// and the object already say.
type Reporter struct {
	rule     *Rule
	obj      *resource.Object
	objIndex int
	out      []Finding
}

// Add reports a finding at field with the rule's references.
func (r *Reporter) Add(field, format string, args ...any) {
	r.Report(Detail{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Detail is what a check says about one finding; zero fields take the
// rule's values.
type Detail struct {
	Field   string
	Message string
	// Refs replaces the rule's references for rules whose controls depend
	// on the field (hostNetwork is CIS 5.2.5, hostPID 5.2.3).
	Refs []Reference
	// Severity overrides the rule's, for facts worse than the rule's
	// usual case (a wildcard Role that also grants escalation).
	Severity Severity
}

// Report records one finding.
func (r *Reporter) Report(d Detail) {
	refs := d.Refs
	if refs == nil {
		refs = r.rule.References
	}
	refs = mergeRefs(refs, nil)
	sev := r.rule.Severity
	if d.Severity != 0 {
		sev = d.Severity
	}
	r.out = append(r.out, Finding{
		ID:          r.rule.ID,
		Title:       r.rule.Title,
		Severity:    sev,
		Standards:   standardsOf(refs),
		References:  refs,
		Object:      refOf(r.obj),
		Field:       d.Field,
		File:        r.obj.Source.File,
		Line:        r.obj.Line(linePath(d.Field)),
		Message:     d.Message,
		Remediation: r.rule.Remediation,
		fact:        r.rule.Fact,
		objIndex:    r.objIndex,
	})
}

// linePath turns the bracketed map keys findings print
// ("metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]")
// into the dotted form the decoder records positions under.
func linePath(field string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(field, '[')
		if i < 0 {
			b.WriteString(field)
			return b.String()
		}
		j := strings.IndexByte(field[i:], ']')
		if j < 0 {
			b.WriteString(field)
			return b.String()
		}
		key := field[i+1 : i+j]
		b.WriteString(field[:i])
		if isIndex(key) {
			b.WriteString("[" + key + "]")
		} else {
			b.WriteString("." + key)
		}
		field = field[i+j+1:]
	}
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
