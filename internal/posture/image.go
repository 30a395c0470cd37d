package posture

import (
	"strings"
)

// ImageRef is a container image reference split into its parts:
// "registry.example:5000/team/app:1.2@sha256:ab..." has Name
// "registry.example:5000/team/app", Tag "1.2" and Digest "sha256:ab...".
type ImageRef struct {
	Name   string
	Tag    string
	Digest string
}

// ParseImage splits an image reference. It never fails: image strings come
// from untrusted manifests, and a malformed one is reported by what it lacks
// (a tag, a digest) rather than rejected. A colon in the last path segment
// starts the tag; a colon before a slash belongs to a registry port, and a
// trailing colon starts no tag (it stays in Name, so that String gives back
// what was parsed).
func ParseImage(s string) ImageRef {
	var ref ImageRef
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s, ref.Digest = s[:i], s[i+1:]
	}
	slash := strings.LastIndexByte(s, '/')
	if i := strings.LastIndexByte(s, ':'); i > slash && i < len(s)-1 {
		s, ref.Tag = s[:i], s[i+1:]
	}
	ref.Name = s
	return ref
}

// String reassembles the reference.
func (r ImageRef) String() string {
	s := r.Name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Pinned reports whether the reference names content by a well-formed
// digest ("algorithm:hex"), the only form a registry cannot change under it.
func (r ImageRef) Pinned() bool {
	alg, hex, ok := strings.Cut(r.Digest, ":")
	if !ok || alg == "" || len(hex) < 32 {
		return false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Mutable reports whether the reference follows a moving tag: "latest" or
// no tag at all (which means latest), without a digest to pin it.
func (r ImageRef) Mutable() bool {
	return !r.Pinned() && (r.Tag == "" || r.Tag == "latest")
}
