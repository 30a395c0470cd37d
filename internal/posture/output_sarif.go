package posture

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// SARIF 2.1.0, the subset GitHub code scanning reads.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifHelp struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifHelp      `json:"help"`
	HelpURI              string         `json:"helpUri,omitempty"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           sarifRuleProps `json:"properties"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifRuleProps struct {
	SecuritySeverity string   `json:"security-severity"`
	Tags             []string `json:"tags"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          sarifResultProps  `json:"properties"`
}

type sarifResultProps struct {
	Object     string   `json:"object"`
	Field      string   `json:"field"`
	References []string `json:"references"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// WriteSARIF writes the report as a SARIF 2.1.0 log for GitHub code
// scanning. The rules are every registered rule of the selected standards,
// so that a rule keeps its index across runs; a finding on a file gets a
// physical location with its line, one from stdin or a cluster a logical
// location naming the object.
func WriteSARIF(w io.Writer, r Report) error {
	var rules []sarifRule
	index := map[string]int{}
	for _, rule := range Rules() {
		if !slices.ContainsFunc(rule.Standards(), func(s Standard) bool { return slices.Contains(r.Standards, s) }) {
			continue
		}
		index[rule.ID] = len(rules)
		rules = append(rules, sarifRuleOf(rule))
	}
	results := []sarifResult{}
	for _, f := range r.Findings {
		var refs []string
		for _, ref := range f.References {
			refs = append(refs, ref.String())
		}
		res := sarifResult{
			RuleID:    f.ID,
			RuleIndex: index[f.ID],
			Level:     f.Severity.sarifLevel(),
			Message:   sarifText{Text: fmt.Sprintf("%s: %s (%s)", f.Object, f.Message, f.Field)},
			PartialFingerprints: map[string]string{
				"rampartFinding/v1": fingerprint(f.ID, f.Object.String(), f.Field),
			},
			Properties: sarifResultProps{Object: f.Object.String(), Field: f.Field, References: refs},
		}
		loc := sarifLocation{LogicalLocations: []sarifLogical{{Name: f.Object.Name, FullyQualifiedName: f.Object.String() + "#" + f.Field, Kind: "object"}}}
		if uri, ok := artifactURI(f.File); ok {
			loc.PhysicalLocation = &sarifPhysical{ArtifactLocation: sarifArtifact{URI: uri}}
			if f.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
			}
		}
		res.Locations = []sarifLocation{loc}
		results = append(results, res)
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool:    sarifTool{Driver: sarifDriver{Name: "rampart", InformationURI: "https://github.com/rampartsec/rampart", Rules: rules}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("write sarif: %w", err)
	}
	return nil
}

func sarifRuleOf(rule Rule) sarifRule {
	var refs, md []string
	for _, ref := range rule.References {
		s := ref.String()
		if ref.Title != "" {
			s += ": " + ref.Title
		}
		refs = append(refs, s)
		if ref.URL != "" {
			md = append(md, fmt.Sprintf("- [%s](%s)", s, ref.URL))
		} else {
			md = append(md, "- "+s)
		}
	}
	desc := rule.Description
	if desc == "" {
		desc = rule.Title + "."
	}
	tags := []string{"security", "kubernetes"}
	for _, s := range rule.Standards() {
		tags = append(tags, string(s))
	}
	helpURI := ""
	if len(rule.References) > 0 {
		helpURI = rule.References[0].URL
	}
	return sarifRule{
		ID:               rule.ID,
		Name:             sarifName(rule.Title),
		ShortDescription: sarifText{Text: rule.Title},
		FullDescription:  sarifText{Text: desc},
		Help: sarifHelp{
			Text:     rule.Remediation + "\n\nReferences: " + strings.Join(refs, "; "),
			Markdown: "**Remediation:** " + rule.Remediation + "\n\n**References:**\n\n" + strings.Join(md, "\n"),
		},
		HelpURI:              helpURI,
		DefaultConfiguration: sarifConfig{Level: rule.Severity.sarifLevel()},
		Properties:           sarifRuleProps{SecuritySeverity: rule.Severity.securityScore(), Tags: tags},
	}
}

// sarifName turns a title into the PascalCase identifier SARIF's rule name
// expects ("Privileged container" -> "PrivilegedContainer").
func sarifName(title string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(title, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// artifactURI turns a finding's file into a SARIF URI relative to the
// repository root, as GitHub expects; stdin and a live cluster have none.
func artifactURI(file string) (string, bool) {
	if file == "" || file == "-" || file == ClusterSource {
		return "", false
	}
	if filepath.IsAbs(file) {
		return "file://" + filepath.ToSlash(file), true
	}
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(file)), "./"), true
}

// ClusterSource is the Source.File of objects read from a live cluster
// (package cluster uses the same value).
const ClusterSource = "cluster"

func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}
