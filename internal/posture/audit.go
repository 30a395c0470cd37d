package posture

import (
	"cmp"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// Options select what Audit reports.
type Options struct {
	// Standards keeps the findings that cite at least one of these
	// standards; nil keeps every finding. Risk scores always count every
	// finding, since a workload's risk does not depend on the report asked
	// for.
	Standards []Standard
}

// Report is the result of an audit: the findings, in a deterministic order
// (input order of the objects, then field, then rule ID), and the risk of
// each workload.
type Report struct {
	Standards []Standard      `json:"standards"`
	Findings  []Finding       `json:"findings"`
	Workloads []WorkloadRisk  `json:"workloads"`
	Audited   []AuditedObject `json:"-"` // every object audited, in input order
}

// AuditedObject names one audited object and where it came from.
type AuditedObject struct {
	Object ObjectRef
	File   string
	Line   int
}

// Audit runs every registered check over objs and scores every workload.
// It only reads objs. The admission webhook calls it with the object under
// review and its Namespace; the CLI with everything it decoded.
func Audit(objs []*resource.Object, opts Options) Report {
	inv := NewInventory(objs)
	index := make(map[*resource.Object]int, len(objs))
	for i, o := range objs {
		index[o] = i
	}
	var all []Finding
	for i := range registry.checks {
		c := &registry.checks[i]
		if c.Workload != nil {
			for _, w := range inv.Workloads {
				r := &Reporter{rule: &c.Rule, obj: w.Object, objIndex: index[w.Object]}
				c.Workload(w, inv, r)
				all = append(all, r.out...)
			}
		}
		if c.Object != nil {
			for _, o := range objs {
				if inv.owned[o] {
					continue
				}
				r := &Reporter{rule: &c.Rule, obj: o, objIndex: index[o]}
				c.Object(o, inv, r)
				all = append(all, r.out...)
			}
		}
	}
	all = mergeFindings(all)
	sortFindings(all)

	rep := Report{Standards: sortStandards(opts.Standards)}
	for _, o := range objs {
		if !inv.owned[o] {
			rep.Audited = append(rep.Audited, AuditedObject{Object: refOf(o), File: o.Source.File, Line: o.Source.Line})
		}
	}
	if opts.Standards == nil {
		rep.Standards = AllStandards()
	}
	for _, f := range all {
		if slices.ContainsFunc(f.Standards, func(s Standard) bool { return slices.Contains(rep.Standards, s) }) {
			rep.Findings = append(rep.Findings, f)
		}
	}
	byObj := map[int][]Finding{}
	for _, f := range all {
		byObj[f.objIndex] = append(byObj[f.objIndex], f)
	}
	for _, w := range inv.Workloads {
		rep.Workloads = append(rep.Workloads, ScoreWorkload(w, inv, byObj[index[w.Object]]))
	}
	return rep
}

// mergeFindings folds findings that state the same fact (same object, same
// field, same non-empty Rule.Fact) into the one whose rule registered first,
// with the union of the references and the highest severity.
func mergeFindings(in []Finding) []Finding {
	type key struct {
		obj         int
		field, fact string
	}
	first := map[key]int{}
	var out []Finding
	for _, f := range in {
		if f.fact == "" {
			out = append(out, f)
			continue
		}
		k := key{f.objIndex, f.Field, f.fact}
		i, ok := first[k]
		if !ok {
			first[k] = len(out)
			out = append(out, f)
			continue
		}
		g := &out[i]
		if precedence(f.ID) < precedence(g.ID) {
			f.References = mergeRefs(f.References, g.References)
			f.Severity = max(f.Severity, g.Severity)
			f.Standards = standardsOf(f.References)
			*g = f
			continue
		}
		g.References = mergeRefs(g.References, f.References)
		g.Severity = max(g.Severity, f.Severity)
		g.Standards = standardsOf(g.References)
	}
	return out
}

func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.objIndex, b.objIndex),
			compareFields(a.Field, b.Field),
			compareIDs(a.ID, b.ID),
			strings.Compare(a.Message, b.Message),
		)
	})
}

// Failed reports whether any finding is at least as severe as threshold.
func (r Report) Failed(threshold Severity) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Severity >= threshold })
}

// Counts returns how many findings there are of each severity.
func (r Report) Counts() map[Severity]int {
	m := map[Severity]int{}
	for _, f := range r.Findings {
		m[f.Severity]++
	}
	return m
}

// Workload returns the risk of the workload named ref ("Kind/ns/name",
// kind matched case-insensitively; "Kind/name" means namespace default).
func (r Report) Workload(ref string) (WorkloadRisk, bool) {
	parts := strings.Split(ref, "/")
	var kind, ns, name string
	switch len(parts) {
	case 2:
		kind, ns, name = parts[0], "default", parts[1]
	case 3:
		kind, ns, name = parts[0], parts[1], parts[2]
	default:
		return WorkloadRisk{}, false
	}
	for _, w := range r.Workloads {
		if strings.EqualFold(w.Object.Kind, kind) && w.Object.Namespace == ns && w.Object.Name == name {
			return w, true
		}
	}
	return WorkloadRisk{}, false
}
