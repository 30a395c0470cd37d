package mesh_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/mesh"
)

// peer renders a PeerAuthentication; created is an RFC 3339 timestamp or
// "" for none.
func peer(ns, name, created, spec string) string {
	ts := ""
	if created != "" {
		ts = ", creationTimestamp: " + created
	}
	return fmt.Sprintf("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: %s, namespace: %s%s}\nspec: %s\n", name, ns, ts, spec)
}

func TestPeerMode(t *testing.T) {
	type want struct {
		mode   mesh.MTLSMode
		level  mesh.PeerLevel
		policy string
	}
	mesh_ := peer("istio-system", "mesh", "", `{mtls: {mode: STRICT}}`)
	tests := []struct {
		name string
		docs []string
		port uint16
		want want
	}{
		{"default permissive", nil, 8080, want{mesh.ModePermissive, mesh.LevelDefault, "/"}},
		{"mesh strict", []string{mesh_}, 8080, want{mesh.ModeStrict, mesh.LevelMesh, "istio-system/mesh"}},
		{"namespace overrides mesh", []string{mesh_, peer("foo", "ns", "", `{mtls: {mode: PERMISSIVE}}`)}, 8080,
			want{mesh.ModePermissive, mesh.LevelNamespace, "foo/ns"}},
		{"namespace unset inherits mesh", []string{mesh_, peer("foo", "ns", "", `{mtls: {mode: UNSET}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelMesh, "istio-system/mesh"}},
		{"namespace without mtls inherits mesh", []string{mesh_, peer("foo", "ns", "", `{}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelMesh, "istio-system/mesh"}},
		{"other namespace ignored", []string{peer("bar", "ns", "", `{mtls: {mode: STRICT}}`)}, 8080,
			want{mesh.ModePermissive, mesh.LevelDefault, "/"}},
		{"workload overrides namespace", []string{peer("foo", "ns", "", `{mtls: {mode: STRICT}}`), peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, mtls: {mode: DISABLE}}`)}, 8080,
			want{mesh.ModeDisable, mesh.LevelWorkload, "foo/wl"}},
		{"workload selector not matching", []string{peer("foo", "ns", "", `{mtls: {mode: STRICT}}`), peer("foo", "wl", "", `{selector: {matchLabels: {app: web}}, mtls: {mode: DISABLE}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelNamespace, "foo/ns"}},
		{"workload unset inherits namespace", []string{peer("foo", "ns", "", `{mtls: {mode: DISABLE}}`), peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, mtls: {mode: UNSET}}`)}, 8080,
			want{mesh.ModeDisable, mesh.LevelNamespace, "foo/ns"}},
		{"port level overrides", []string{peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {"8080": {mode: STRICT}}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelPort, "foo/wl"}},
		{"port level other port", []string{peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, mtls: {mode: PERMISSIVE}, portLevelMtls: {"8080": {mode: STRICT}}}`)}, 9090,
			want{mesh.ModePermissive, mesh.LevelWorkload, "foo/wl"}},
		{"port level disable under strict mesh", []string{mesh_, peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, portLevelMtls: {"8080": {mode: DISABLE}}}`)}, 8080,
			want{mesh.ModeDisable, mesh.LevelPort, "foo/wl"}},
		{"port level inherits through unset workload", []string{mesh_, peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, portLevelMtls: {"9090": {mode: DISABLE}}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelMesh, "istio-system/mesh"}},
		{"port level unset inherits", []string{mesh_, peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, portLevelMtls: {"8080": {mode: UNSET}}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelMesh, "istio-system/mesh"}},
		{"oldest namespace policy wins", []string{
			peer("foo", "a-new", "2024-05-01T00:00:00Z", `{mtls: {mode: DISABLE}}`),
			peer("foo", "z-old", "2024-01-01T00:00:00Z", `{mtls: {mode: STRICT}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelNamespace, "foo/z-old"}},
		{"same age: name decides", []string{
			peer("foo", "b", "2024-01-01T00:00:00Z", `{mtls: {mode: DISABLE}}`),
			peer("foo", "a", "2024-01-01T00:00:00Z", `{mtls: {mode: STRICT}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelNamespace, "foo/a"}},
		{"oldest workload policy wins even if unset", []string{
			peer("foo", "ns", "", `{mtls: {mode: STRICT}}`),
			peer("foo", "old", "2024-01-01T00:00:00Z", `{selector: {matchLabels: {app: api}}, mtls: {mode: UNSET}}`),
			peer("foo", "new", "2024-06-01T00:00:00Z", `{selector: {matchLabels: {version: v1}}, mtls: {mode: DISABLE}}`)}, 8080,
			want{mesh.ModeStrict, mesh.LevelNamespace, "foo/ns"}},
		{"root namespace selector ignored", []string{peer("istio-system", "sel", "", `{selector: {matchLabels: {app: api}}, mtls: {mode: STRICT}}`)}, 8080,
			want{mesh.ModePermissive, mesh.LevelDefault, "/"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, mesh.Options{}, tc.docs...)
			d := e.PeerMode(server, tc.port)
			if d.Mode != tc.want.mode || d.Level != tc.want.level || d.Policy.String() != tc.want.policy {
				t.Fatalf("PeerMode = %+v (%s), want %+v", d, d, tc.want)
			}
		})
	}
}

func TestPeerModeRootNamespaceWorkload(t *testing.T) {
	// A workload in the root namespace takes the mesh-level policy, and a
	// selector policy there is ignored, as Istio's composition does.
	e := mustEngine(t, mesh.Options{},
		peer("istio-system", "mesh", "", `{mtls: {mode: STRICT}}`),
		peer("istio-system", "gw", "", `{selector: {matchLabels: {app: gw}}, mtls: {mode: DISABLE}}`))
	gw := mesh.Workload{Namespace: "istio-system", Labels: map[string]string{"app": "gw"}}
	if d := e.PeerMode(gw, 443); d.Mode != mesh.ModeStrict || d.Level != mesh.LevelMesh {
		t.Fatalf("PeerMode = %s, want STRICT from the mesh policy", d)
	}
	if w := strings.Join(e.Warnings(), "\n"); !strings.Contains(w, "PeerAuthentication/istio-system/gw: a PeerAuthentication with a selector in the root namespace is ignored") {
		t.Fatalf("warnings %q must explain the ignored policy", w)
	}
}

func TestPeerDecisionString(t *testing.T) {
	e := mustEngine(t, mesh.Options{}, peer("foo", "wl", "", `{selector: {matchLabels: {app: api}}, portLevelMtls: {"8080": {mode: STRICT}}}`))
	if got := e.PeerMode(server, 8080).String(); got != "STRICT (port-level PeerAuthentication foo/wl)" {
		t.Fatalf("String() = %q", got)
	}
	if got := e.PeerMode(server, 80).String(); got != "PERMISSIVE (default: no PeerAuthentication sets a mode)" {
		t.Fatalf("String() = %q", got)
	}
}
