package resource

import (
	"fmt"
	"strings"
)

// Source locates a document in the user's input.
type Source struct {
	File string // path as given, or "-" for standard input
	Line int    // line of the document's first key
}

func (s Source) String() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Object is one decoded document. Obj is a pointer to the typed object: a
// k8s.io/api type (*corev1.Pod, *appsv1.Deployment, *networkingv1.NetworkPolicy,
// *rbacv1.Role, ...) or one of this package's Cilium and Istio types.
type Object struct {
	Source     Source
	APIVersion string
	Kind       string
	Namespace  string // empty for cluster-scoped kinds
	Name       string
	Obj        any

	pos *positions
}

// Ref returns "Kind/namespace/name", or "Kind/name" for cluster-scoped kinds:
// the form Rampart uses in every message that names an object.
func (o *Object) Ref() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Key identifies the object among others of its kind, ignoring the API
// version: two documents with the same Key describe the same object.
func (o *Object) Key() string {
	return groupOf(o.APIVersion) + "/" + o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Line returns the line of the field at path in the object's document, or of
// its nearest ancestor that has one. Posture findings use it to point at the
// exact line of a setting.
func (o *Object) Line(path string) int {
	if o.pos == nil {
		return o.Source.Line
	}
	return o.pos.line(path, o.Source.Line)
}

// Errorf returns a FieldError at path in this object.
func (o *Object) Errorf(path, format string, args ...any) *FieldError {
	return &FieldError{File: o.Source.File, Line: o.Line(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

func groupOf(apiVersion string) string {
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		return g
	}
	return ""
}
