package mesh

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PathNormalization is one of Istio's meshConfig.pathNormalization
// options. The normalized path is both what policies are matched against
// and what the proxy forwards: matching one path and forwarding another is
// how CVE-2021-31920-style bypasses happen.
type PathNormalization int

// The options, as Istio names them. BASE is Istio's default.
const (
	NormalizeBase                  PathNormalization = iota // RFC 3986 dot segments, unreserved %XX decoding, '\' to '/'
	NormalizeNone                                           // the path as received (still rejects %00)
	NormalizeMergeSlashes                                   // BASE, then "//" to "/"
	NormalizeDecodeAndMergeSlashes                          // %2F and %5C decoded first, then MERGE_SLASHES
)

// pathNormalizationNames are the options' names in Istio's MeshConfig.
var pathNormalizationNames = [...]string{
	NormalizeBase:                  "BASE",
	NormalizeNone:                  "NONE",
	NormalizeMergeSlashes:          "MERGE_SLASHES",
	NormalizeDecodeAndMergeSlashes: "DECODE_AND_MERGE_SLASHES",
}

func (n PathNormalization) String() string {
	if n >= 0 && int(n) < len(pathNormalizationNames) {
		return pathNormalizationNames[n]
	}
	return "PathNormalization(" + strconv.Itoa(int(n)) + ")"
}

// PathNormalizationNames lists the options' names, for help texts.
func PathNormalizationNames() string { return strings.Join(pathNormalizationNames[:], ", ") }

// ParsePathNormalization returns the option Istio's MeshConfig names s
// (meshConfig.pathNormalization.normalization), in any case.
func ParsePathNormalization(s string) (PathNormalization, error) {
	for i, name := range pathNormalizationNames {
		if strings.EqualFold(s, name) {
			return PathNormalization(i), nil
		}
	}
	return 0, fmt.Errorf("path normalization %q: want one of %s", s, PathNormalizationNames())
}

// ErrBadPath means the request must be rejected with 400, as Istio rejects
// a path containing %00.
var ErrBadPath = errors.New("invalid request path")

// ErrBadMethod means the request must be rejected with 400: Istio rejects
// methods that are not upper case.
var ErrBadMethod = errors.New("invalid request method: not upper case")

// NormalizePath normalizes a request path (percent-encoded, as on the
// wire, optionally followed by "?query") as Istio does before authorization
// (https://istio.io/latest/docs/reference/config/security/normalization/).
// The query is kept as is. Percent-decoding happens once: "%252e" stays
// "%2e", never becomes ".".
func NormalizePath(p string, mode PathNormalization) (string, error) {
	path, query, hasQuery := strings.Cut(p, "?")
	if strings.Contains(strings.ToLower(path), "%00") {
		return "", ErrBadPath
	}
	if mode == NormalizeNone || !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "\\") {
		return p, nil
	}
	path = decodePercent(path, mode == NormalizeDecodeAndMergeSlashes)
	path = strings.ReplaceAll(path, "\\", "/")
	path = removeDotSegments(path)
	if mode == NormalizeMergeSlashes || mode == NormalizeDecodeAndMergeSlashes {
		for strings.Contains(path, "//") {
			path = strings.ReplaceAll(path, "//", "/")
		}
	}
	if hasQuery {
		return path + "?" + query, nil
	}
	return path, nil
}

// CheckMethod returns ErrBadMethod unless m is upper case, as Istio
// requires before authorization.
func CheckMethod(m string) error {
	for i := 0; i < len(m); i++ {
		if 'a' <= m[i] && m[i] <= 'z' {
			return ErrBadMethod
		}
	}
	return nil
}

// decodePercent decodes %XX of unreserved characters (ALPHA, DIGIT, "-",
// ".", "_", "~") and, with slashes, of "/" and "\". Other escapes stay.
func decodePercent(s string, slashes bool) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				c := hi<<4 | lo
				if isUnreserved(c) || (slashes && (c == '/' || c == '\\')) {
					b.WriteByte(c)
					i += 2
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}
