package posture_test

import (
	"strings"
	"testing"

	"github.com/rampartsec/rampart/internal/posture"
)

func TestParseImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0a", 32)
	tests := []struct {
		in              string
		want            posture.ImageRef
		pinned, mutable bool
	}{
		{"nginx", posture.ImageRef{Name: "nginx"}, false, true},
		{"nginx:latest", posture.ImageRef{Name: "nginx", Tag: "latest"}, false, true},
		{"nginx:1.27", posture.ImageRef{Name: "nginx", Tag: "1.27"}, false, false},
		{"registry:5000/team/app", posture.ImageRef{Name: "registry:5000/team/app"}, false, true},
		{"registry:5000/team/app:v2", posture.ImageRef{Name: "registry:5000/team/app", Tag: "v2"}, false, false},
		{"app@" + digest, posture.ImageRef{Name: "app", Digest: digest}, true, false},
		{"app:latest@" + digest, posture.ImageRef{Name: "app", Tag: "latest", Digest: digest}, true, false},
		{"app@sha256:abc", posture.ImageRef{Name: "app", Digest: "sha256:abc"}, false, true},
		{"app@sha256:" + strings.Repeat("XY", 32), posture.ImageRef{Name: "app", Digest: "sha256:" + strings.Repeat("XY", 32)}, false, true},
	}
	for _, tt := range tests {
		got := posture.ParseImage(tt.in)
		if got != tt.want || got.Pinned() != tt.pinned || got.Mutable() != tt.mutable {
			t.Errorf("ParseImage(%q) = %+v pinned=%v mutable=%v; want %+v pinned=%v mutable=%v",
				tt.in, got, got.Pinned(), got.Mutable(), tt.want, tt.pinned, tt.mutable)
		}
		if got.String() != tt.in {
			t.Errorf("ParseImage(%q).String() = %q", tt.in, got.String())
		}
	}
}
