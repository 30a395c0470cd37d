package posture

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Standard names a body of controls a finding can belong to. --standard
// selects findings by these names.
type Standard string

// The standards Rampart audits against.
const (
	CIS           Standard = "cis"            // CIS Kubernetes Benchmark 1.9, section 5
	PSSBaseline   Standard = "pss-baseline"   // Pod Security Standards, baseline profile
	PSSRestricted Standard = "pss-restricted" // Pod Security Standards, restricted profile
	Rampart       Standard = "rampart"        // Rampart's own rules
)

// Peer tools whose checks a rule may cite as references, so that users
// comparing reports can match findings. They are not standards: --standard
// cannot select them and Rule.Standards leaves them out.
const (
	KubeScore Standard = "kube-score"
	Trivy     Standard = "trivy"
)

// AllStandards lists every standard in the order outputs present them.
func AllStandards() []Standard { return []Standard{CIS, PSSBaseline, PSSRestricted, Rampart} }

// ParseStandards parses a comma-separated list such as "cis,pss-baseline".
// An empty string selects every standard. The result is sorted in
// AllStandards order without duplicates.
func ParseStandards(s string) ([]Standard, error) {
	if strings.TrimSpace(s) == "" {
		return AllStandards(), nil
	}
	var out []Standard
	for part := range strings.SplitSeq(s, ",") {
		st := Standard(strings.ToLower(strings.TrimSpace(part)))
		if !slices.Contains(AllStandards(), st) {
			return nil, fmt.Errorf("unknown standard %q (want cis, pss-baseline, pss-restricted or rampart)", strings.TrimSpace(part))
		}
		out = append(out, st)
	}
	return sortStandards(out), nil
}

func sortStandards(in []Standard) []Standard {
	var out []Standard
	for _, st := range AllStandards() {
		if slices.Contains(in, st) {
			out = append(out, st)
		}
	}
	return out
}

// Reference cites one control of one standard.
type Reference struct {
	Standard Standard `json:"standard"`
	Control  string   `json:"control"`         // "5.2.2", "privileged", "image-mutable-tag"
	Title    string   `json:"title,omitempty"` // the control's own title
	URL      string   `json:"url,omitempty"`
}

func (r Reference) String() string {
	switch r.Standard {
	case CIS:
		return "CIS " + r.Control
	case PSSBaseline:
		return "PSS baseline " + r.Control
	case PSSRestricted:
		return "PSS restricted " + r.Control
	case Trivy:
		return "Trivy " + r.Control
	}
	return string(r.Standard) + " " + r.Control
}

func (r Reference) key() string { return string(r.Standard) + "\x00" + r.Control }

// mergeRefs returns the union of a and b in a stable order: by standard in
// AllStandards order, then by control with numeric CIS sections compared
// numerically ("5.1.10" after "5.1.9").
func mergeRefs(a, b []Reference) []Reference {
	seen := map[string]bool{}
	var out []Reference
	for _, r := range append(slices.Clone(a), b...) {
		if seen[r.key()] {
			continue
		}
		seen[r.key()] = true
		out = append(out, r)
	}
	rank := func(s Standard) int {
		if i := slices.Index(AllStandards(), s); i >= 0 {
			return i
		}
		return len(AllStandards()) // peer references after the standards
	}
	slices.SortStableFunc(out, func(x, y Reference) int {
		if c := rank(x.Standard) - rank(y.Standard); c != 0 {
			return c
		}
		return compareControls(x.Control, y.Control)
	})
	return out
}

// compareControls orders dotted section numbers numerically and anything
// else lexically.
func compareControls(a, b string) int {
	for a != "" && b != "" {
		var x, y string
		x, a, _ = strings.Cut(a, ".")
		y, b, _ = strings.Cut(b, ".")
		nx, okx := sectionNumber(x)
		ny, oky := sectionNumber(y)
		if okx && oky {
			if nx != ny {
				return nx - ny
			}
			continue
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// sectionNumber parses a section number written canonically ("5", not
// "05" or "+5"); anything else compares as text.
func sectionNumber(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(n) != s {
		return 0, false
	}
	return n, true
}

// standardsOf lists the distinct standards refs belong to, in
// AllStandards order.
func standardsOf(refs []Reference) []Standard {
	var out []Standard
	for _, r := range refs {
		out = append(out, r.Standard)
	}
	return sortStandards(out)
}

// compareFields orders field paths with list indices compared numerically,
// so that containers[2] sorts before containers[10].
func compareFields(a, b string) int {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitsPrefix(s string) int {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}
