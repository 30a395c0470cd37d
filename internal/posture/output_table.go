package posture

import (
	"fmt"
	"io"
	"strings"
)

// ANSI colours per severity, used only when the output is a terminal.
var severityColor = map[Severity]string{High: "\x1b[31m", Medium: "\x1b[33m", Low: "\x1b[36m"}

const colorReset = "\x1b[0m"

// WriteTable writes the report for people: findings grouped by object (a
// workload's group header carries its risk score), each with its severity,
// rule ID, field and line, message and standards, then a summary line. With
// color, severities and bands are coloured; the CLI sets it only when
// stdout is a terminal.
func WriteTable(w io.Writer, r Report, color bool) error {
	paint := func(s Severity, text string) string {
		if !color {
			return text
		}
		return severityColor[s] + text + colorReset
	}
	risks := map[ObjectRef]WorkloadRisk{}
	for _, wr := range r.Workloads {
		risks[wr.Object] = wr
	}
	byObj := map[ObjectRef][]Finding{}
	for _, f := range r.Findings {
		byObj[f.Object] = append(byObj[f.Object], f)
	}
	var b strings.Builder
	groups := 0
	for _, a := range r.Audited {
		fs := byObj[a.Object]
		risk, isWorkload := risks[a.Object]
		if len(fs) == 0 && !isWorkload {
			continue
		}
		if groups > 0 {
			b.WriteString("\n")
		}
		groups++
		fmt.Fprintf(&b, "%s  (%s)", a.Object, location(a.File, a.Line))
		if isWorkload {
			band := risk.Band
			if color {
				band = paint(bandSeverity(band), band)
			}
			fmt.Fprintf(&b, "  risk %.1f %s", risk.Score, band)
		}
		b.WriteString("\n")
		if len(fs) == 0 {
			b.WriteString("  no findings\n")
		}
		for _, f := range fs {
			sev := fmt.Sprintf("%-6s", strings.ToUpper(f.Severity.String()))
			fmt.Fprintf(&b, "  %s  %s  %s", paint(f.Severity, sev), f.ID, f.Field)
			if f.Line > 0 {
				fmt.Fprintf(&b, "  line %d", f.Line)
			}
			b.WriteString("\n")
			fmt.Fprintf(&b, "          %s: %s\n", f.Title, f.Message)
			var refs []string
			for _, ref := range f.References {
				refs = append(refs, ref.String())
			}
			fmt.Fprintf(&b, "          [%s]\n", strings.Join(refs, ", "))
		}
	}
	c := r.Counts()
	if groups > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%s (%d high, %d medium, %d low) in %s; %s scored; standards: %s\n",
		plural(len(r.Findings), "finding"), c[High], c[Medium], c[Low], plural(len(r.Audited), "object"),
		plural(len(r.Workloads), "workload"), joinStandards(r.Standards))
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func location(file string, line int) string {
	if line > 0 {
		return fmt.Sprintf("%s:%d", file, line)
	}
	return file
}

func bandSeverity(band string) Severity {
	switch band {
	case "High":
		return High
	case "Medium":
		return Medium
	}
	return Low
}

func joinStandards(ss []Standard) string {
	var parts []string
	for _, s := range ss {
		parts = append(parts, string(s))
	}
	return strings.Join(parts, ",")
}

// WriteExplain prints how a workload's score was reached: each triggered
// rule with its impacts before and after remediations, its score and
// bucket, then the bucket maxima and their combination.
func WriteExplain(w io.Writer, risk WorkloadRisk) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  (%s)\n", risk.Object, location(risk.File, risk.Line))
	fmt.Fprintf(&b, "remediations present: %s\n", orNone(remediationNames(risk.Remediations)))
	if len(risk.Rules) == 0 {
		b.WriteString("no risk rule applies\n")
	}
	for _, rc := range risk.Rules {
		mark := " "
		if rc.Counted {
			mark = "*"
		}
		fmt.Fprintf(&b, "%s %-24s %5.2f  bucket %s\n", mark, rc.Rule, rc.Score, rc.Bucket)
		fmt.Fprintf(&b, "    %s (from %s)\n", rc.Title, strings.Join(rc.Findings, ", "))
		fmt.Fprintf(&b, "    C/I/A %s/%s/%s", rc.Base[0], rc.Base[1], rc.Base[2])
		if len(rc.Applied) > 0 {
			fmt.Fprintf(&b, " -> %s/%s/%s after %s", rc.Impact[0], rc.Impact[1], rc.Impact[2], strings.Join(remediationNames(rc.Applied), ", "))
		}
		fmt.Fprintf(&b, "; scope %s, vector %s, exploitability %s\n", rc.Scope, rc.Vector, rc.Exploit)
		imp := 1 - (1-impactOf(rc.Impact[0]).Value())*(1-impactOf(rc.Impact[1]).Value())*(1-impactOf(rc.Impact[2]).Value())
		fmt.Fprintf(&b, "    %.2f x 4 x %.4f + 9 x %.2f x %.2f = %.2f\n", rc.Scope.Value(), imp, rc.Vector.Value(), rc.Exploit.Value(), rc.Score)
	}
	var terms []string
	for _, rc := range risk.Rules {
		if rc.Counted {
			terms = append(terms, fmt.Sprintf("%.2f^2", rc.Score))
		}
	}
	if len(terms) > 0 {
		fmt.Fprintf(&b, "score = min(10, sqrt(%s)) = %.2f\n", strings.Join(terms, " + "), risk.Score)
	} else {
		fmt.Fprintf(&b, "score = %.2f\n", risk.Score)
	}
	fmt.Fprintf(&b, "band: %s (Low <= 3 < Medium <= 7 < High)\n", risk.Band)
	_, err := io.WriteString(w, b.String())
	return err
}

func impactOf(s string) Impact {
	switch s {
	case "high":
		return HighImpact
	case "low":
		return LowImpact
	}
	return NoImpact
}

func remediationNames(rs []Remediation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r))
	}
	return out
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}
