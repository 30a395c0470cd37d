package guardrail

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// DefaultWebhookName is the name of the ValidatingWebhookConfiguration and,
// as a fully qualified name, of its one webhook.
const DefaultWebhookName = "guardrail.rampart.io"

// WebhookOptions describe the ValidatingWebhookConfiguration to install.
type WebhookOptions struct {
	Name string // configuration and webhook name; DefaultWebhookName when empty
	// NamespaceSelector narrows the namespaces reviewed. kube-system is
	// always excluded on top of it: a guardrail that failed closed on the
	// control plane's own pods could keep the cluster from healing.
	NamespaceSelector *metav1.LabelSelector
	// Exactly one of URL and Service says where the API server sends
	// reviews. A URL without a path gets ValidatePath.
	URL     string
	Service *types.NamespacedName // port 443, path ValidatePath
	// CABundle is the PEM CA the API server verifies the webhook with.
	CABundle []byte
	// TimeoutSeconds is how long the API server waits (1 to 30); 10 when 0.
	TimeoutSeconds int32
}

// ServiceHosts returns the names the API server may use for a Service,
// which the serving certificate must cover.
func ServiceHosts(svc types.NamespacedName) []string {
	return []string{
		svc.Name + "." + svc.Namespace + ".svc",
		svc.Name + "." + svc.Namespace + ".svc.cluster.local",
		svc.Name + "." + svc.Namespace,
		svc.Name,
	}
}

// ParseWebhookURL checks a --service-url and returns it with ValidatePath
// when it has no path, and the host the certificate must cover.
func ParseWebhookURL(s string) (string, string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("service URL %q: %w", s, err)
	}
	// The API server requires https and rejects user info, queries and
	// fragments in webhook URLs.
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("service URL %q: want https://HOST[:PORT][/PATH] without user, query or fragment", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = ValidatePath
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return u.String(), host, nil
}

// kubeSystemExcluded is added to every namespace selector.
var kubeSystemExcluded = metav1.LabelSelectorRequirement{
	Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"},
}

// WebhookConfiguration returns the ValidatingWebhookConfiguration for o:
// CREATE and UPDATE of every reviewed kind (and of pods/ephemeralcontainers),
// failurePolicy Fail, sideEffects None, admissionReviewVersions [v1].
func WebhookConfiguration(o WebhookOptions) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	name := cmp.Or(o.Name, DefaultWebhookName)
	if strings.Count(name, ".") < 2 {
		return nil, fmt.Errorf("webhook name %q: want a fully qualified name such as %s", name, DefaultWebhookName)
	}
	if (o.URL == "") == (o.Service == nil) {
		return nil, errors.New("webhook: give exactly one of a URL and a Service")
	}
	if len(o.CABundle) == 0 {
		return nil, errors.New("webhook: no CA bundle")
	}
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: o.CABundle}
	if o.URL != "" {
		u, _, err := ParseWebhookURL(o.URL)
		if err != nil {
			return nil, err
		}
		cc.URL = &u
	} else {
		cc.Service = &admissionregistrationv1.ServiceReference{
			Namespace: o.Service.Namespace, Name: o.Service.Name, Path: ptr.To(ValidatePath), Port: ptr.To[int32](443),
		}
	}
	sel := &metav1.LabelSelector{}
	if o.NamespaceSelector != nil {
		sel = o.NamespaceSelector.DeepCopy()
	}
	sel.MatchExpressions = append(sel.MatchExpressions, kubeSystemExcluded)
	timeout := o.TimeoutSeconds
	if timeout == 0 {
		timeout = 10
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "rampart-guardrail"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    name,
			ClientConfig:            cc,
			Rules:                   webhookRules(),
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       sel,
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, nil
}

// webhookRules builds one rule per API group from reviewedKinds.
func webhookRules() []admissionregistrationv1.RuleWithOperations {
	byGroup := map[string][]string{}
	for gvk, k := range reviewedKinds {
		byGroup[gvk.Group] = append(byGroup[gvk.Group], k.resource)
		if gvk.Kind == "Pod" {
			for _, sub := range podSubresources {
				byGroup[gvk.Group] = append(byGroup[gvk.Group], k.resource+"/"+sub)
			}
		}
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	var rules []admissionregistrationv1.RuleWithOperations
	for _, g := range groups {
		res := byGroup[g]
		slices.Sort(res)
		rules = append(rules, admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{g}, APIVersions: []string{"v1"}, Resources: res, Scope: ptr.To(admissionregistrationv1.AllScopes),
			},
		})
	}
	return rules
}

// ApplyWebhook creates the configuration, or replaces the one of that name.
// It reports whether it created it.
func ApplyWebhook(ctx context.Context, client kubernetes.Interface, cfg *admissionregistrationv1.ValidatingWebhookConfiguration) (bool, error) {
	api := client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cur, err := api.Get(ctx, cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := api.Create(ctx, cfg, metav1.CreateOptions{FieldManager: "rampart"}); err != nil {
			return false, fmt.Errorf("create ValidatingWebhookConfiguration %s: %w", cfg.Name, err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read ValidatingWebhookConfiguration %s: %w", cfg.Name, err)
	}
	next := cfg.DeepCopy()
	next.ResourceVersion = cur.ResourceVersion
	if _, err := api.Update(ctx, next, metav1.UpdateOptions{FieldManager: "rampart"}); err != nil {
		return false, fmt.Errorf("update ValidatingWebhookConfiguration %s: %w", cfg.Name, err)
	}
	return false, nil
}
