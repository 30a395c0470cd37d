package guardrail

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rampartsec/rampart/internal/posture"
)

// LabelPrefix starts every namespace label the guardrail reads.
const LabelPrefix = "guardrail.rampart.io/"

// Mode is what the guardrail does with a request that violates a level:
// deny it, allow it with warnings, or allow it with audit annotations.
type Mode string

// The modes, in the order responses are built. Each is also the suffix of
// its namespace label ("guardrail.rampart.io/enforce").
const (
	Enforce Mode = "enforce"
	Warn    Mode = "warn"
	Audit   Mode = "audit"
)

// Modes lists every mode in evaluation order.
func Modes() []Mode { return []Mode{Enforce, Warn, Audit} }

// Label returns the namespace label that sets the mode.
func (m Mode) Label() string { return LabelPrefix + string(m) }

// LevelName names a set of findings.
type LevelName string

// The named levels; each includes the previous one.
const (
	// Baseline is the Pod Security Standards baseline profile: every
	// finding that cites a PSS baseline control. It matches what Pod
	// Security Admission's baseline level denies.
	Baseline LevelName = "baseline"
	// Restricted adds the PSS restricted profile: every finding that cites
	// PSS baseline or restricted.
	Restricted LevelName = "restricted"
	// RampartLevel adds every CIS and Rampart finding of medium or high
	// severity, except those whose verdict depends on objects other than
	// the one under review (see contextual).
	RampartLevel LevelName = "rampart"
)

// contextual lists rules that say more about what else is in the
// namespace than about the object under review: whether a NetworkPolicy
// selects the pods, whether a Service sends them traffic outside the mesh.
// kubectl applies a directory in file order, so gating on them would deny
// a Deployment only because its NetworkPolicy comes later. They still
// count in the risk score (score:N levels) and in `rampart audit`.
var contextual = []string{"cis:5.3.2", "rampart:mesh-disabled"}

// Level is what a mode checks: a named level, or a minimum workload risk
// score ("score:7"). The zero Level is not valid.
type Level struct {
	Name     LevelName // empty for a score level
	MinScore float64   // for a score level: 0 < MinScore <= 10
}

// ParseLevel parses a label value: "baseline", "restricted", "rampart" or
// "score:N" with N a number in (0, 10].
func ParseLevel(s string) (Level, error) {
	switch v := LevelName(strings.TrimSpace(s)); v {
	case Baseline, Restricted, RampartLevel:
		return Level{Name: v}, nil
	}
	num, ok := strings.CutPrefix(strings.TrimSpace(s), "score:")
	if !ok {
		return Level{}, fmt.Errorf("level %q: want baseline, restricted, rampart or score:N", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(n) || n <= 0 || n > 10 {
		return Level{}, fmt.Errorf("level %q: the score must be a number above 0 and at most 10", s)
	}
	return Level{MinScore: n}, nil
}

// String returns the level as a label value.
func (l Level) String() string {
	if l.Name != "" {
		return string(l.Name)
	}
	return "score:" + strconv.FormatFloat(l.MinScore, 'f', -1, 64)
}

// includes reports whether a finding belongs to a named level.
func (l Level) includes(f posture.Finding) bool {
	pss := slices.Contains(f.Standards, posture.PSSBaseline)
	switch l.Name {
	case Baseline:
		return pss
	case Restricted:
		return pss || slices.Contains(f.Standards, posture.PSSRestricted)
	case RampartLevel:
		if pss || slices.Contains(f.Standards, posture.PSSRestricted) {
			return true
		}
		return f.Severity >= posture.Medium && !slices.Contains(contextual, f.ID)
	}
	return false
}

// Violation is why an object fails a level: the findings that put it
// there and, for a score level, the score.
type Violation struct {
	Level    Level
	Findings []posture.Finding
	Risk     *posture.WorkloadRisk // set for a score level
}

// Check returns the violation of l by an object with findings and, for a
// workload, risk; nil when the object passes. A score level never fails
// an object that is not a workload.
func (l Level) Check(findings []posture.Finding, risk *posture.WorkloadRisk) *Violation {
	if l.Name == "" {
		if risk == nil || risk.Score < l.MinScore {
			return nil
		}
		// The findings that raised the score: those of the rules counted.
		var ids []string
		for _, rc := range risk.Rules {
			if rc.Counted {
				ids = append(ids, rc.Findings...)
			}
		}
		v := &Violation{Level: l, Risk: risk}
		for _, f := range findings {
			if slices.Contains(ids, f.ID) {
				v.Findings = append(v.Findings, f)
			}
		}
		return v
	}
	var out []posture.Finding
	for _, f := range findings {
		if l.includes(f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &Violation{Level: l, Findings: out}
}

// Policy is the level of each mode for one namespace; a mode without a
// level does nothing.
type Policy struct {
	Levels map[Mode]Level
	// Namespace is the namespace whose labels set the policy, empty for
	// the --cluster-scoped-mode policy; messages name it.
	Namespace string
	// Invalid lists label problems. An invalid value does not disable its
	// mode: it is read as the strictest level, rampart, so that a typo in
	// an enforce label fails closed.
	Invalid []string
}

// Empty reports whether no mode is set, so the request needs no audit.
func (p Policy) Empty() bool { return len(p.Levels) == 0 }

// PolicyFromLabels reads the guardrail labels of a namespace.
func PolicyFromLabels(namespace string, labels map[string]string) Policy {
	p := Policy{Namespace: namespace}
	for _, m := range Modes() {
		v, ok := labels[m.Label()]
		if !ok {
			continue
		}
		p.set(m, v, m.Label()+"="+v)
	}
	return p
}

func (p *Policy) set(m Mode, value, what string) {
	if p.Levels == nil {
		p.Levels = map[Mode]Level{}
	}
	l, err := ParseLevel(value)
	if err != nil {
		p.Invalid = append(p.Invalid, fmt.Sprintf("%s: %v; using %s", what, err, RampartLevel))
		l = Level{Name: RampartLevel}
	}
	p.Levels[m] = l
}

// ParseModes parses the --cluster-scoped-mode flag: comma-separated
// MODE=LEVEL pairs such as "warn=rampart,audit=rampart", or "" or "none"
// for no checks. Unlike a label, an invalid flag is an error.
func ParseModes(s string) (Policy, error) {
	var p Policy
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return p, nil
	}
	var errs []error
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		m := Mode(strings.TrimSpace(k))
		if !ok || !slices.Contains(Modes(), m) {
			errs = append(errs, fmt.Errorf("%q: want MODE=LEVEL with MODE enforce, warn or audit", part))
			continue
		}
		if _, dup := p.Levels[m]; dup {
			errs = append(errs, fmt.Errorf("%q: %s given twice", part, m))
			continue
		}
		l, err := ParseLevel(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Levels == nil {
			p.Levels = map[Mode]Level{}
		}
		p.Levels[m] = l
	}
	if err := errors.Join(errs...); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// String renders the policy as MODE=LEVEL pairs in mode order.
func (p Policy) String() string {
	var parts []string
	for _, m := range Modes() {
		if l, ok := p.Levels[m]; ok {
			parts = append(parts, string(m)+"="+l.String())
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}
