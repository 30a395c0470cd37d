package resource

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestPositionsLine checks that field paths find their lines, including
// dotted keys, paths without list indices (as encoding/json names fields),
// merge keys and unknown tails, which fall back to the closest ancestor.
func TestPositionsLine(t *testing.T) {
	const doc = `base: &base
  image: nginx
metadata:
  labels:
    app.kubernetes.io/name: web
    app: web
spec:
  containers:
  - name: a
    <<: *base
  - name: b
    ports:
    - containerPort: 80
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	p := &positions{root: n.Content[0]}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"", 99},
		{"metadata", 3},
		{"metadata.labels.app.kubernetes.io/name", 5},
		{"metadata.labels.app", 6},
		{"spec.containers[0]", 9},
		{"spec.containers[1].name", 11},
		{"spec.containers[1].ports[0].containerPort", 13},
		{"spec.containers.name", 9},                // no index: the first item
		{"spec.containers[0].image", 2},            // through the merge key
		{"spec.containers[1].securityContext", 11}, // missing: the item
		{"spec.containers[7].name", 8},             // out of range: the list
		{"nothing.here", 99},
	} {
		if got := p.line(tc.path, 99); got != tc.want {
			t.Errorf("line(%q) = %d, want %d", tc.path, got, tc.want)
		}
	}
	if got := p.sub("spec.containers[1]").line("ports[0].containerPort", 0); got != 13 {
		t.Errorf("sub(...).line = %d, want 13", got)
	}
}
