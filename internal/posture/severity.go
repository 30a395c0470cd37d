package posture

import (
	"fmt"
	"strings"
)

// Severity ranks how urgently a finding needs attention. The zero value is
// not a valid severity, so a rule that forgets to set one fails Register.
type Severity int

// The severities, in increasing order, so that comparisons such as
// s >= threshold implement --fail-on.
const (
	Low Severity = iota + 1
	Medium
	High
)

// String returns the lowercase name used in every output format.
func (s Severity) String() string {
	switch s {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText makes severities appear by name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity parses "low", "medium" or "high", case-insensitively.
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "low":
		return Low, nil
	case "medium":
		return Medium, nil
	case "high":
		return High, nil
	}
	return 0, fmt.Errorf("unknown severity %q (want low, medium or high)", s)
}

// securityScore is the SARIF "security-severity" GitHub uses to bucket
// alerts: above 7.0 is high, 4.0 to 6.9 medium, below 4.0 low.
func (s Severity) securityScore() string {
	switch s {
	case High:
		return "8.0"
	case Medium:
		return "5.5"
	}
	return "3.0"
}

// sarifLevel maps a severity onto SARIF's result levels.
func (s Severity) sarifLevel() string {
	switch s {
	case High:
		return "error"
	case Medium:
		return "warning"
	}
	return "note"
}
