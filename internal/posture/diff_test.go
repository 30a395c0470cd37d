package posture_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
	"github.com/rampartsec/rampart/internal/resource"
)

func mustDecodeOne(t *testing.T, yaml string) *resource.Object {
	t.Helper()
	if yaml == "" {
		return nil
	}
	objs, err := resource.DecodeBytes("test.yaml", []byte(yaml))
	if err != nil || len(objs) != 1 {
		t.Fatalf("decode: %v (%d objects)", err, len(objs))
	}
	return objs[0]
}

const diffBase = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {team: a}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1.0
        securityContext:
          privileged: false
`

func TestDiff(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     []string
	}{
		{"privileged turned on", diffBase, replace(diffBase, "privileged: false", "privileged: true"),
			[]string{"spec.template.spec.containers[0].securityContext.privileged: false -> true"}},
		{"replicas and labels are not security-relevant", diffBase, replace(replace(diffBase, "replicas: 1", "replicas: 5"), "team: a", "team: b"), nil},
		{"image and hostNetwork", diffBase, replace(replace(diffBase, "image: web:1.0", "image: web:latest"), "      containers:", "      hostNetwork: true\n      containers:"),
			[]string{"spec.template.spec.containers[0].image: \"web:1.0\" -> \"web:latest\"", "spec.template.spec.hostNetwork: <unset> -> true"}},
		{"create", "", `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]
`, []string{
			"roleRef.apiGroup: <unset> -> \"rbac.authorization.k8s.io\"", "roleRef.kind: <unset> -> \"ClusterRole\"", "roleRef.name: <unset> -> \"cluster-admin\"",
			"subjects[0].apiGroup: <unset> -> \"rbac.authorization.k8s.io\"", "subjects[0].kind: <unset> -> \"Group\"", "subjects[0].name: <unset> -> \"devs\""}},
		{"namespace leaves the mesh", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {rampart.io/mesh: enabled, owner: x}\n",
			"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {owner: y}\n",
			[]string{"metadata.labels[rampart.io/mesh]: \"enabled\" -> <unset>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range posture.Diff(mustDecodeOne(t, tt.old), mustDecodeOne(t, tt.new)) {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Diff =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

func replace(s, old, new string) string { return strings.Replace(s, old, new, 1) }
