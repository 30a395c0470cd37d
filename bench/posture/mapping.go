package main

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rampartsec/rampart/internal/posture"
)

// mappingYAML is the table that says, for every check a peer reports,
// whether it is about security and which Rampart findings report the same
// risk. mapping.yaml documents each judgement.
//
//go:embed mapping.yaml
var mappingYAML []byte

// Mapping is mapping.yaml.
type Mapping struct {
	// Peers maps a tool to its check rules, in the order they are tried.
	Peers map[string][]CheckRule `yaml:"peers"`
	// Disputed are peer findings on a given manifest that Rampart does not
	// report on purpose: false positives of the peer.
	Disputed []Dispute `yaml:"disputed"`
}

// Scope says whether a peer check is about security.
type Scope string

// The scopes of a peer check.
const (
	Security   Scope = "security"
	OutOfScope Scope = "out"
)

// CheckRule classifies one peer check, or the findings of a check whose
// message contains Match.
type CheckRule struct {
	Check   string   `yaml:"check"`
	Match   string   `yaml:"match,omitempty"`
	Title   string   `yaml:"title,omitempty"`
	Scope   Scope    `yaml:"scope"`
	Rampart []string `yaml:"rampart,omitempty"` // Rampart rule IDs that report the same risk
	Why     string   `yaml:"why,omitempty"`
}

// Dispute is a peer finding Rampart is right not to report.
type Dispute struct {
	Tool     string `yaml:"tool"`
	Check    string `yaml:"check"`
	Manifest string `yaml:"manifest"`
	Why      string `yaml:"why"`
}

// parseMapping reads and validates a mapping: known scopes, Rampart IDs
// that exist, a reason for every out-of-scope check, every security check
// Rampart has no rule for and every dispute.
func parseMapping(data []byte) (*Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	var errs []error
	for tool, rules := range m.Peers {
		for i, r := range rules {
			at := fmt.Sprintf("mapping: %s rule %d (%s)", tool, i, r.Check)
			switch {
			case r.Check == "":
				errs = append(errs, fmt.Errorf("%s: no check", at))
			case r.Scope != Security && r.Scope != OutOfScope:
				errs = append(errs, fmt.Errorf("%s: scope %q, want security or out", at, r.Scope))
			case r.Scope == OutOfScope && (r.Why == "" || len(r.Rampart) > 0):
				errs = append(errs, fmt.Errorf("%s: an out-of-scope check needs a why and no rampart IDs", at))
			case r.Scope == Security && len(r.Rampart) == 0 && r.Why == "":
				errs = append(errs, fmt.Errorf("%s: a security check Rampart has no rule for needs a why", at))
			}
			for _, id := range r.Rampart {
				if _, ok := posture.LookupRule(id); !ok {
					errs = append(errs, fmt.Errorf("%s: no Rampart rule %s", at, id))
				}
			}
		}
	}
	for i, d := range m.Disputed {
		if d.Tool == "" || d.Check == "" || d.Manifest == "" || d.Why == "" {
			errs = append(errs, fmt.Errorf("mapping: dispute %d: tool, check, manifest and why are all required", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

// classify returns the rule for a finding of tool, or nil when the table
// has none (the check is new to the table).
func (m *Mapping) classify(tool string, f Finding) *CheckRule {
	for i, r := range m.Peers[tool] {
		if r.Check == f.Check && (r.Match == "" || strings.Contains(f.Message, r.Match)) {
			return &m.Peers[tool][i]
		}
	}
	return nil
}

// disputed returns the dispute of a finding on manifest, if any.
func (m *Mapping) disputed(tool, manifest, check string) *Dispute {
	for i, d := range m.Disputed {
		if d.Tool == tool && d.Check == check && d.Manifest == manifest {
			return &m.Disputed[i]
		}
	}
	return nil
}
