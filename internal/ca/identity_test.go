package ca_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/rampartsec/rampart/internal/ca"
)

func TestWorkloadID(t *testing.T) {
	tests := []struct {
		ns, sa        string
		want, wantErr string
	}{
		{ns: "default", sa: "web", want: "spiffe://cluster.local/ns/default/sa/web"},
		{ns: "kube-system", sa: "coredns", want: "spiffe://cluster.local/ns/kube-system/sa/coredns"},
		{ns: "a", sa: "build.robot-1", want: "spiffe://cluster.local/ns/a/sa/build.robot-1"},
		{ns: strings.Repeat("n", 63), sa: "web", want: "spiffe://cluster.local/ns/" + strings.Repeat("n", 63) + "/sa/web"},
		{ns: "Default", sa: "web", wantErr: `ca: namespace "Default": must be a DNS label`},
		{ns: "a.b", sa: "web", wantErr: `ca: namespace "a.b": must be a DNS label`},
		{ns: "-a", sa: "web", wantErr: `ca: namespace "-a": must be a DNS label`},
		{ns: "default", sa: "web.", wantErr: `ca: service account "web.": must be a DNS subdomain`},
		{ns: "default", sa: "we b", wantErr: `ca: service account "we b": must be a DNS subdomain`},
		{ns: "default", sa: strings.Repeat("a.", 127) + "a", wantErr: `ca: service account "a.a.a.`},
		{ns: strings.Repeat("n", 100), sa: "web", wantErr: `ca: namespace "` + strings.Repeat("n", 80) + `...": must be a DNS label`},
	}
	for _, tt := range tests {
		t.Run(tt.ns+"/"+tt.sa, func(t *testing.T) {
			id, err := ca.WorkloadID(td, tt.ns, tt.sa)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) || !errors.Is(err, ca.ErrInvalidIdentity) {
					t.Fatalf("error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.String() != tt.want {
				t.Errorf("ID %s, want %s", id, tt.want)
			}
			ns, sa, err := ca.ParseWorkloadID(id)
			if err != nil || ns != tt.ns || sa != tt.sa {
				t.Errorf("ParseWorkloadID = %q, %q, %v; want %q, %q", ns, sa, err, tt.ns, tt.sa)
			}
		})
	}
	if _, err := ca.WorkloadID(spiffeid.TrustDomain{}, "default", "web"); err == nil || err.Error() != `ca: trust domain "": must be set` {
		t.Errorf("zero trust domain: %v", err)
	}
}

func TestParseWorkloadIDRejects(t *testing.T) {
	for _, s := range []string{
		"spiffe://cluster.local",
		"spiffe://cluster.local/ns/default",
		"spiffe://cluster.local/ns/default/sa/web/extra",
		"spiffe://cluster.local/sa/web/ns/default",
		"spiffe://cluster.local/ns/Default/sa/web",
	} {
		id := spiffeid.RequireFromString(s)
		if _, _, err := ca.ParseWorkloadID(id); !errors.Is(err, ca.ErrInvalidIdentity) {
			t.Errorf("ParseWorkloadID(%s): %v, want an invalid identity error", s, err)
		}
	}
	_, _, err := ca.ParseWorkloadID(spiffeid.RequireFromString("spiffe://cluster.local/ns/default"))
	if want := `ca: SPIFFE ID "spiffe://cluster.local/ns/default": not a workload ID, want spiffe://<trust domain>/ns/<namespace>/sa/<service account>`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestPrincipal(t *testing.T) {
	tests := []struct{ id, want string }{
		{"spiffe://cluster.local/ns/default/sa/web", "cluster.local/ns/default/sa/web"},
		{"spiffe://example.org/ns/prod/sa/api", "example.org/ns/prod/sa/api"},
		{"spiffe://example.org", "example.org"},
	}
	for _, tt := range tests {
		if got := ca.Principal(spiffeid.RequireFromString(tt.id)); got != tt.want {
			t.Errorf("Principal(%s) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if got := ca.Principal(spiffeid.ID{}); got != "" {
		t.Errorf("Principal of the zero ID = %q, want empty", got)
	}
}
