package posture

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// Rule is what a user sees of a check: its stable ID, what it looks for, how
// bad a finding is and how to fix it. IDs are "pss:<check>", "cis:<section>"
// or "rampart:<name>" and never change meaning once released, because users
// suppress and track findings by them.
type Rule struct {
	ID          string
	Title       string
	Description string // one or two sentences on why the setting matters
	Severity    Severity
	References  []Reference // every control the rule implements
	Remediation string

	// Fact names the fact a rule's findings state when other rules can
	// state the same fact about the same field (a container adding
	// SYS_ADMIN fails the PSS baseline and restricted capability checks
	// and CIS 5.2.9). Audit merges findings with the same object, field
	// and non-empty Fact into one, keeping the earliest registered rule's
	// ID and every reference.
	Fact string
}

// Standards lists the standards the rule belongs to.
func (r Rule) Standards() []Standard { return standardsOf(r.References) }

var ruleIDRE = regexp.MustCompile(`^(pss|cis|rampart):[A-Za-z0-9_.-]+$`)

// Validate reports what is missing from a rule; Register refuses invalid
// rules so that every output can rely on them being complete.
func (r Rule) Validate() error {
	var errs []error
	if !ruleIDRE.MatchString(r.ID) {
		errs = append(errs, fmt.Errorf("id %q is not pss:, cis: or rampart: followed by a name", r.ID))
	}
	if r.Title == "" {
		errs = append(errs, errors.New("no title"))
	}
	if r.Severity < Low || r.Severity > High {
		errs = append(errs, errors.New("no severity"))
	}
	if len(r.References) == 0 {
		errs = append(errs, errors.New("no references"))
	}
	if r.Remediation == "" {
		errs = append(errs, errors.New("no remediation"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rule %s: %w", r.ID, err)
	}
	return nil
}

// Check is a registered rule together with the code that evaluates it.
// Workload runs once for each Pod and each controller's pod template,
// Object once for each object; a check sets either or both.
type Check struct {
	Rule
	Workload func(w *Workload, inv *Inventory, r *Reporter)
	Object   func(o *resource.Object, inv *Inventory, r *Reporter)
}

// Validate checks the rule and that an evaluation function is set.
func (c Check) Validate() error {
	if err := c.Rule.Validate(); err != nil {
		return err
	}
	if c.Workload == nil && c.Object == nil {
		return fmt.Errorf("rule %s: set Workload, Object or both", c.ID)
	}
	return nil
}

// registry holds the checks in registration order, which is also the
// precedence order when findings merge.
var registry struct {
	checks []Check
	byID   map[string]int
}

// Register adds a check. It returns an error for an invalid check or a
// duplicate ID; built-in checks register from init and panic on error,
// since that is a programming mistake caught by any test run.
func Register(c Check) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if registry.byID == nil {
		registry.byID = map[string]int{}
	}
	if _, dup := registry.byID[c.ID]; dup {
		return fmt.Errorf("rule %s: registered twice", c.ID)
	}
	c.References = mergeRefs(c.References, nil)
	registry.byID[c.ID] = len(registry.checks)
	registry.checks = append(registry.checks, c)
	return nil
}

func mustRegister(cs ...Check) {
	for _, c := range cs {
		if err := Register(c); err != nil {
			panic(err)
		}
	}
}

// Rules returns every registered rule sorted by ID.
func Rules() []Rule {
	out := make([]Rule, len(registry.checks))
	for i, c := range registry.checks {
		out[i] = c.Rule
	}
	slices.SortFunc(out, func(a, b Rule) int { return compareIDs(a.ID, b.ID) })
	return out
}

// LookupRule returns the rule with id.
func LookupRule(id string) (Rule, bool) {
	i, ok := registry.byID[id]
	if !ok {
		return Rule{}, false
	}
	return registry.checks[i].Rule, true
}

// compareIDs sorts rule IDs by namespace (pss, cis, rampart) and then by
// name, with CIS sections compared numerically.
func compareIDs(a, b string) int {
	na, ra, _ := strings.Cut(a, ":")
	nb, rb, _ := strings.Cut(b, ":")
	order := []string{"pss", "cis", "rampart"}
	if c := slices.Index(order, na) - slices.Index(order, nb); c != 0 {
		return c
	}
	return compareControls(ra, rb)
}

// precedence returns the registration index of id, lower first.
func precedence(id string) int {
	if i, ok := registry.byID[id]; ok {
		return i
	}
	return len(registry.checks)
}
