package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// print writes the report: findings per tool per manifest, the missed,
// disputed, unmapped and out-of-scope peer findings, and throughput.
func (r *result) print(w io.Writer, c *corpus) {
	fmt.Fprintf(w, "Posture audit comparison on %d manifests of %s\n\n", len(r.manifests), c.dir)
	for _, t := range r.tools {
		fmt.Fprintf(w, "  %-10s %s (%s)\n", t.tool.Name, t.tool.bin, t.version)
	}
	for _, m := range r.missing {
		fmt.Fprintf(w, "  MISSING    %s\n", m)
	}

	fmt.Fprintf(w, "\nFindings per manifest (failed checks; kube-score counts one per comment):\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "manifest\t")
	for _, t := range r.tools {
		fmt.Fprintf(tw, "%s\t", t.tool.Name)
	}
	fmt.Fprint(tw, "missed\t\n")
	missedBy := map[string]int{}
	for _, v := range r.missed {
		missedBy[v.manifest]++
	}
	totals := make([]int, len(r.tools))
	for _, name := range r.manifests {
		fmt.Fprintf(tw, "%s\t", strings.TrimSuffix(name, ".yaml"))
		for i, t := range r.tools {
			n := len(t.findings[name])
			totals[i] += n
			fmt.Fprintf(tw, "%d\t", n)
		}
		fmt.Fprintf(tw, "%s\t\n", dash(missedBy[name]))
	}
	fmt.Fprint(tw, "total\t")
	for _, n := range totals {
		fmt.Fprintf(tw, "%d\t", n)
	}
	fmt.Fprintf(tw, "%d\t\n", len(r.missed))
	tw.Flush()
	if c.expect != nil {
		fmt.Fprintf(w, "\nRampart reports exactly the IDs expect.yaml lists on %d of %d manifests.\n", r.expectOK, len(r.manifests))
	}

	fmt.Fprintf(w, "\nSecurity findings of peers: %d covered by Rampart, %d missed, %d disputed, %d unmapped.\n", r.covered, len(r.missed), len(r.disputed), len(r.unmapped))
	section := func(title string, vs []verdict, why bool) {
		if len(vs) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		// One entry per peer check (and message, for checks that say
		// several things), with the manifests it fired on.
		type group struct {
			v         verdict
			manifests []string
		}
		var groups []*group
		byKey := map[string]*group{}
		for _, v := range vs {
			// Messages name objects; a mapped check groups by its rule.
			key := v.tool + "\x00" + v.f.Check + "\x00" + v.f.Message
			if v.rule != nil {
				key = v.tool + "\x00" + v.f.Check + "\x00" + v.rule.Match
			}
			if why {
				key += "\x00" + v.manifest
			}
			g, ok := byKey[key]
			if !ok {
				g = &group{v: v}
				byKey[key] = g
				groups = append(groups, g)
			}
			g.manifests = append(g.manifests, strings.TrimSuffix(v.manifest, ".yaml"))
		}
		for _, g := range groups {
			v := g.v
			fmt.Fprintf(w, "  %s %s", v.tool, v.f.Check)
			switch {
			case v.rule != nil && v.rule.Title != "":
				fmt.Fprintf(w, " %q", v.rule.Title)
			case v.f.Message != "":
				fmt.Fprintf(w, " (%s)", v.f.Message)
			}
			if v.rule != nil && len(v.rule.Rampart) > 0 {
				fmt.Fprintf(w, " -> %s", strings.Join(v.rule.Rampart, " | "))
			}
			fmt.Fprintf(w, "\n      on %d: %s\n", len(g.manifests), list(g.manifests, 12))
			switch {
			case why && v.why != "":
				fmt.Fprintf(w, "      why: %s\n", v.why)
			case v.rule != nil && v.rule.Why != "":
				fmt.Fprintf(w, "      note: %s\n", v.rule.Why)
			}
		}
	}
	section("MISSED: security findings a peer reports and Rampart does not", r.missed, false)
	section("UNMAPPED: peer checks mapping.yaml does not classify yet", r.unmapped, false)
	section("Disputed: peer findings Rampart is right not to report", r.disputed, true)
	if len(r.outScope) > 0 {
		fmt.Fprintf(w, "\nOut of scope (not about security), findings per check:\n")
		for _, tool := range slices.Sorted(maps.Keys(r.outScope)) {
			for _, k := range slices.Sorted(maps.Keys(r.outScope[tool])) {
				fmt.Fprintf(w, "  %-10s %4d  %s\n", tool, r.outScope[tool][k], k)
			}
		}
	}

	fmt.Fprintf(w, "\nThroughput: each tool's binary started on the whole corpus (%d manifests, objects renamed per manifest), median of %d:\n\n", len(r.manifests), len(r.tools[0].whole))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "tool\twhole corpus\tmanifests/s\tmin\tmax\tone process per manifest\tmanifests/s\t\n")
	var fastestPeer float64
	var rampartRate float64
	for _, t := range r.tools {
		med := median(t.whole)
		rate := float64(len(r.manifests)) / med.Seconds()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.tool.Name, ms(med), num(rate), ms(slices.Min(t.whole)), ms(slices.Max(t.whole)),
			ms(t.perFile), num(float64(len(r.manifests))/t.perFile.Seconds()))
		if t.tool.Name == "rampart" {
			rampartRate = rate
		} else {
			fastestPeer = max(fastestPeer, rate)
		}
	}
	tw.Flush()
	if r.inProcess.decode > 0 {
		fmt.Fprintf(w, "\nWhere Rampart's time goes, in process on the same corpus (median of %d): decode %s, audit %s; the rest of a run is process start and output.\n",
			r.inProcess.reps, ms(r.inProcess.decode), ms(r.inProcess.audit))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Goal: no security finding a peer has that Rampart misses: %d missed, %d unmapped.\n", len(r.missed), len(r.unmapped))
	if fastestPeer > 0 {
		fmt.Fprintf(w, "Goal: at least twice the fastest peer's throughput: Rampart %.0f manifests/s = %.1fx the fastest peer (%.0f).\n", rampartRate, rampartRate/fastestPeer, fastestPeer)
	}
}

// list joins up to n names and says how many more there are.
func list(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", ... and %d more", len(names)-n)
}

// num prints a rate with a decimal when it is small.
func num(x float64) string {
	if x < 10 {
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
