package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rampartsec/rampart/internal/policy"
)

// writeMeshTable prints a mesh trace: the flow, the egress and ingress
// lines as without the mesh, then each layer with its verdict, policy,
// reason and details, and a final line naming the verdict and the layer
// that decided.
func writeMeshTable(w io.Writer, f policy.Flow, v policy.Verdict, req *traceRequest, mt *meshTrace) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "FROM\t%s\n", describeSide(f.Src))
	fmt.Fprintf(tw, "TO\t%s\n", describeSide(f.Dst))
	fmt.Fprintf(tw, "PORT\t%s\n", portString(f.Proto, f.Port))
	if req != nil {
		line := req.Method + " " + req.Path
		if f.HTTP != nil && f.HTTP.Path != strings.SplitN(req.Path, "?", 2)[0] {
			line += " (normalized to " + f.HTTP.Path + ")"
		}
		if req.Host != "" {
			line += ", host " + req.Host
		}
		fmt.Fprintf(tw, "HTTP\t%s\n", line)
		if h := headerLine(req, mt.jwt); h != "" {
			fmt.Fprintf(tw, "HEADERS\t%s\n", h)
		}
	}
	if t := mt.jwt; t != nil {
		iss, _ := t.claims["iss"].(string)
		sub, _ := t.claims["sub"].(string)
		fmt.Fprintf(tw, "JWT\tiss %q, sub %q (%s, as \"Authorization: Bearer\")\n", iss, sub, t.flag)
	}
	if mt.Principal != "" {
		fmt.Fprintf(tw, "PRINCIPAL\t%s (mTLS)\n", mt.Principal)
	} else {
		fmt.Fprintf(tw, "PRINCIPAL\tnone: plaintext (%s)\n", mt.Plaintext)
	}
	fmt.Fprintf(tw, "VERDICT\t%s\n", strings.ToUpper(verdictWord(mt.Allowed)))
	tw.Flush()
	fmt.Fprintln(w)
	writeTraceSides(w, f, v)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "LAYERS, in the order the node enforces them (the first deny decides):")
	for i, l := range mt.Layers {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("%d. %-21s  %-10s  %s", i+1, l.Layer, l.Verdict, l.Policy), " "))
		fmt.Fprintf(w, "   %s\n", l.Reason)
		for _, d := range l.Details {
			fmt.Fprintf(w, "     %s\n", d)
		}
	}
	fmt.Fprintln(w)
	for _, n := range mt.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w, mt.finalLine())
}

// headerLine lists the request's headers but the token --jwt added,
// which the JWT row shows.
func headerLine(req *traceRequest, jwt *traceJWT) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(req.Header)) {
		for _, v := range req.Header[name] {
			if jwt != nil && name == "Authorization" && v == "Bearer "+jwt.raw {
				continue
			}
			parts = append(parts, name+": "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// finalLine states the verdict and the layer that decided it.
func (mt *meshTrace) finalLine() string {
	l := mt.Layers[mt.DecidedBy]
	by := fmt.Sprintf("layer %d (%s)", mt.DecidedBy+1, l.Layer)
	if l.Policy != "" {
		by += " by " + l.Policy
	}
	if !mt.Allowed {
		return fmt.Sprintf("DENIED at %s: %s", by, mt.Answer)
	}
	verdict := "ALLOWED"
	if mt.Caveat != "" {
		verdict += ", " + mt.Caveat
	}
	return fmt.Sprintf("%s: no layer denies; the last to decide was %s", verdict, by)
}

// meshTraceJSON is traceJSON with the mesh fields: the layers in order,
// the deciding layer, what a denied client gets, the caveat of a
// conditional allow and the notes.
func meshTraceJSON(f policy.Flow, v policy.Verdict, mt *meshTrace) traceJSON {
	t := traceJSONOf(f, v)
	t.Verdict = verdictWord(mt.Allowed)
	t.Principal = mt.Principal
	t.Layers = mt.Layers
	t.DecidedBy = mt.Layers[mt.DecidedBy].Layer
	t.Answer = mt.Answer
	if mt.Allowed {
		t.Caveat = mt.Caveat
	}
	t.Notes = mt.Notes
	return t
}
