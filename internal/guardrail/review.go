package guardrail

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"

	"github.com/rampartsec/rampart/internal/resource"
)

// reviewAPIVersion and reviewKind are the only AdmissionReview the webhook
// speaks; the configuration asks for admissionReviewVersions [v1].
var reviewGVK = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")

// kindInfo is what the guardrail knows about one kind it reviews.
type kindInfo struct {
	resource   string // plural resource name, for the webhook rules
	namespaced bool
	newObj     func() metav1.Object
}

func newOf[T any, PT interface {
	*T
	metav1.Object
}]() metav1.Object {
	return PT(new(T))
}

// reviewedKinds lists every kind the guardrail reviews. The webhook rules
// are generated from it, so the two cannot drift apart.
var reviewedKinds = map[metav1.GroupVersionKind]kindInfo{
	{Version: "v1", Kind: "Pod"}:                                                    {"pods", true, newOf[corev1.Pod]},
	{Group: "apps", Version: "v1", Kind: "Deployment"}:                              {"deployments", true, newOf[appsv1.Deployment]},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"}:                             {"statefulsets", true, newOf[appsv1.StatefulSet]},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"}:                               {"daemonsets", true, newOf[appsv1.DaemonSet]},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet"}:                              {"replicasets", true, newOf[appsv1.ReplicaSet]},
	{Group: "batch", Version: "v1", Kind: "Job"}:                                    {"jobs", true, newOf[batchv1.Job]},
	{Group: "batch", Version: "v1", Kind: "CronJob"}:                                {"cronjobs", true, newOf[batchv1.CronJob]},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:               {"roles", true, newOf[rbacv1.Role]},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:        {"clusterroles", false, newOf[rbacv1.ClusterRole]},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}:        {"rolebindings", true, newOf[rbacv1.RoleBinding]},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}: {"clusterrolebindings", false, newOf[rbacv1.ClusterRoleBinding]},
}

// podSubresources are the pod subresources whose updates carry a whole Pod
// that can change its security: ephemeral containers are added through one.
var podSubresources = []string{"ephemeralcontainers"}

// ErrBadReview is matched by every error about a request the webhook cannot
// read; the response carries code 400.
var ErrBadReview = errors.New("bad admission review")

// badReview is a request the webhook cannot read, with the UID when it got
// that far.
type badReview struct {
	uid types.UID
	msg string
}

func (e *badReview) Error() string { return e.msg }
func (e *badReview) Is(target error) bool {
	return target == ErrBadReview
}

func badf(uid types.UID, format string, args ...any) *badReview {
	return &badReview{uid: uid, msg: fmt.Sprintf(format, args...)}
}

// decodeReview reads an AdmissionReview and checks that it is one the
// webhook can answer: admission.k8s.io/v1, with a request that has a UID.
func decodeReview(body []byte) (*admissionv1.AdmissionRequest, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badf("", "empty body: want an admission.k8s.io/v1 AdmissionReview")
	}
	if body[0] != '{' {
		return nil, badf("", "body is not a JSON object: want an admission.k8s.io/v1 AdmissionReview")
	}
	var review admissionv1.AdmissionReview
	// Case-sensitive, like the API server: "Request" is not "request".
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		return nil, badf("", "decode AdmissionReview: %v", cleanJSONError(err))
	}
	var uid types.UID
	if review.Request != nil {
		uid = review.Request.UID
	}
	if gvk := review.GroupVersionKind(); gvk != reviewGVK {
		return nil, badf(uid, "apiVersion %q kind %q: want %s %s", review.APIVersion, review.Kind, reviewGVK.GroupVersion(), reviewGVK.Kind)
	}
	if review.Request == nil {
		return nil, badf("", "AdmissionReview has no request")
	}
	if uid == "" {
		return nil, badf("", "AdmissionReview request has no uid")
	}
	return review.Request, nil
}

// jsonTypeErrorRE matches the type errors of encoding/json and
// sigs.k8s.io/json, which name Go types: "cannot unmarshal number into Go
// struct field PodSpec.spec.containers of type []v1.Container".
var jsonTypeErrorRE = regexp.MustCompile(`cannot unmarshal (\S+) into Go (?:struct field \S*?\.(\S+)|value) of type \S+`)

// cleanJSONError rewrites a JSON error without Go type names, which say
// nothing to a user: "spec.containers: wrong type (a JSON number)".
func cleanJSONError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if m := jsonTypeErrorRE.FindStringSubmatch(msg); m != nil {
		field := m[2]
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s: wrong type (a JSON %s)", field, m[1])
	}
	return msg
}

// decodedObject is the object of a request, read into its Go type.
type decodedObject struct {
	obj     *resource.Object
	unknown []string // fields the Go type does not have, not checked
}

// decodeObject reads raw (request.object or request.oldObject) as a kind.
// The API server has validated the object already, so decoding is lenient
// about fields this build does not know (a newer API server adds some):
// they are returned for a warning instead of failing every request.
func decodeObject(uid types.UID, what string, raw []byte, gvk metav1.GroupVersionKind, k kindInfo, namespace string) (decodedObject, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return decodedObject{}, badf(uid, "request has no %s", what)
	}
	if raw[0] != '{' {
		return decodedObject{}, badf(uid, "request %s is not a JSON object", what)
	}
	typed := k.newObj()
	strict, err := kjson.UnmarshalStrict(raw, typed)
	if err != nil {
		return decodedObject{}, badf(uid, "decode %s as %s: %v", what, gvk.Kind, cleanJSONError(err))
	}
	var d decodedObject
	for _, se := range strict {
		d.unknown = append(d.unknown, se.Error())
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err == nil && (tm.APIVersion != "" || tm.Kind != "") {
		want := gvkVersion(gvk)
		if tm.APIVersion != want || tm.Kind != gvk.Kind {
			return decodedObject{}, badf(uid, "%s is %s %s, but the request is for %s %s", what, tm.APIVersion, tm.Kind, want, gvk.Kind)
		}
	}
	if k.namespaced {
		if namespace == "" {
			return decodedObject{}, badf(uid, "request for namespaced %s has no namespace", gvk.Kind)
		}
		typed.SetNamespace(namespace)
	} else {
		namespace = ""
		typed.SetNamespace("")
	}
	name := typed.GetName()
	if name == "" && typed.GetGenerateName() != "" {
		name = typed.GetGenerateName() + "*"
	}
	d.obj = &resource.Object{
		Source:     resource.Source{File: "admission"},
		APIVersion: gvkVersion(gvk),
		Kind:       gvk.Kind,
		Namespace:  namespace,
		Name:       name,
		Obj:        typed,
	}
	return d, nil
}

func gvkVersion(gvk metav1.GroupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Version
	}
	return gvk.Group + "/" + gvk.Version
}

// encodeReview wraps a response in an AdmissionReview.
func encodeReview(resp *admissionv1.AdmissionResponse) []byte {
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: reviewGVK.GroupVersion().String(), Kind: reviewGVK.Kind},
		Response: resp,
	}
	data, err := json.Marshal(review)
	if err != nil {
		// Every field is a plain string, bool, map or slice: this cannot
		// fail, but the answer must still deny.
		data = []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":false,"status":{"status":"Failure","code":500,"message":"rampart guardrail: cannot encode the response"}}}`)
	}
	return data
}

// denied returns a response that denies with code and message. The UID, when
// known, is echoed and named in the message, so that a denial found in a
// log can be matched with the API server's audit log.
func denied(uid types.UID, code int32, msg string) *admissionv1.AdmissionResponse {
	if uid != "" {
		msg += fmt.Sprintf(" (request %s)", uid)
	}
	return &admissionv1.AdmissionResponse{
		UID:     uid,
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    code,
			Reason:  reasonFor(code),
			Message: "rampart guardrail: " + msg,
		},
	}
}

func reasonFor(code int32) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusRequestEntityTooLarge:
		return metav1.StatusReasonRequestEntityTooLarge
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusUnsupportedMediaType:
		return metav1.StatusReasonUnsupportedMediaType
	}
	return metav1.StatusReasonInternalError
}

// lookupKind returns what the guardrail knows about the kind of a request.
func lookupKind(req *admissionv1.AdmissionRequest) (kindInfo, error) {
	k, ok := reviewedKinds[req.Kind]
	if !ok {
		return kindInfo{}, badf(req.UID, "kind %s %s is not reviewed by the guardrail (reviewed: %s)", gvkVersion(req.Kind), req.Kind.Kind, reviewedKindNames())
	}
	if req.SubResource != "" && !(req.Kind.Kind == "Pod" && slices.Contains(podSubresources, req.SubResource)) {
		return kindInfo{}, badf(req.UID, "subresource %s/%s is not reviewed by the guardrail", k.resource, req.SubResource)
	}
	return k, nil
}

func reviewedKindNames() string {
	var names []string
	for gvk := range reviewedKinds {
		names = append(names, gvk.Kind)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
