package posture

import (
	"encoding/json"
	"fmt"
	"io"
)

// JSONSchemaVersion names the layout WriteJSON produces; docs/posture.md
// documents it, and it changes only when a field changes meaning or goes.
const JSONSchemaVersion = "rampart.io/audit/v1"

type jsonReport struct {
	SchemaVersion string         `json:"schemaVersion"`
	Standards     []Standard     `json:"standards"`
	Summary       jsonSummary    `json:"summary"`
	Findings      []Finding      `json:"findings"`
	Workloads     []WorkloadRisk `json:"workloads"`
}

type jsonSummary struct {
	Objects  int `json:"objects"`
	Findings int `json:"findings"`
	High     int `json:"high"`
	Medium   int `json:"medium"`
	Low      int `json:"low"`
}

// WriteJSON writes the report as indented JSON. Empty lists are written as
// [] rather than null, so consumers need not special-case them.
func WriteJSON(w io.Writer, r Report) error {
	c := r.Counts()
	out := jsonReport{
		SchemaVersion: JSONSchemaVersion,
		Standards:     r.Standards,
		Summary:       jsonSummary{Objects: len(r.Audited), Findings: len(r.Findings), High: c[High], Medium: c[Medium], Low: c[Low]},
		Findings:      r.Findings,
		Workloads:     r.Workloads,
	}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	if out.Workloads == nil {
		out.Workloads = []WorkloadRisk{}
	}
	for i := range out.Workloads {
		if out.Workloads[i].Rules == nil {
			out.Workloads[i].Rules = []RuleContribution{}
		}
		if out.Workloads[i].Remediations == nil {
			out.Workloads[i].Remediations = []Remediation{}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
