package labels_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rampartsec/rampart/internal/labels"
)

func TestSelectorMatches(t *testing.T) {
	set := labels.New(map[string]string{"app": "web", "tier": "front", "k8s:odd": "x"})
	tests := []struct {
		name string
		sel  *metav1.LabelSelector
		want bool
	}{
		{"nil selects all", nil, true},
		{"empty selects all", &metav1.LabelSelector{}, true},
		{"matchLabels hit", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, true},
		{"matchLabels miss", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, false},
		{"matchLabels AND", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "back"}}, false},
		{"In", expr("tier", "In", "front", "mid"), true},
		{"In miss", expr("tier", "In", "back"), false},
		{"In missing key", expr("zone", "In", "a"), false},
		{"NotIn", expr("tier", "NotIn", "back"), true},
		{"NotIn hit", expr("tier", "NotIn", "front"), false},
		{"NotIn missing key matches", expr("zone", "NotIn", "a"), true},
		{"Exists", expr("app", "Exists"), true},
		{"Exists missing", expr("zone", "Exists"), false},
		{"DoesNotExist", expr("zone", "DoesNotExist"), true},
		{"DoesNotExist present", expr("app", "DoesNotExist"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := labels.FromLabelSelector(tt.sel, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := sel.Matches(set); got != tt.want {
				t.Errorf("%s matches %s = %v, want %v", sel, set, got, tt.want)
			}
		})
	}
}

func TestSelectorErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		sel     *metav1.LabelSelector
		wantErr string
	}{
		{"bad operator", expr("a", "Equals", "x"), `unknown operator "Equals"`},
		{"In without values", expr("a", "In"), "needs at least one value"},
		{"Exists with values", expr("a", "Exists", "x"), "takes no values"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := labels.FromLabelSelector(tt.sel, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestSelectorCanonical(t *testing.T) {
	a, _ := labels.FromLabelSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"b": "2", "a": "1"}}, nil)
	b, _ := labels.FromLabelSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "a", Operator: "In", Values: []string{"1"}}, {Key: "b", Operator: "In", Values: []string{"2"}}}}, nil)
	if a.String() != b.String() {
		t.Fatalf("equal selectors print differently: %q vs %q", a, b)
	}
	if labels.Nothing().Matches(labels.New(nil)) {
		t.Fatal("Nothing matched the empty set")
	}
}

func TestCiliumKey(t *testing.T) {
	for in, want := range map[string]string{
		"k8s:io.kubernetes.pod.namespace": "io.kubernetes.pod.namespace",
		"any:app":                         "app",
		"reserved:host":                   "reserved:host",
		"app":                             "app",
	} {
		if got := labels.CiliumKey(in); got != want {
			t.Errorf("CiliumKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func expr(key, op string, vals ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: key, Operator: metav1.LabelSelectorOperator(op), Values: vals}}}
}
