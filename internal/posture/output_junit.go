package posture

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	File     string      `xml:"file,attr,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: one testsuite per audited
// object that has findings, one failing testcase per finding, and one
// passing testcase per object without findings so that CI dashboards count
// what was checked.
func WriteJUnit(w io.Writer, r Report) error {
	byObj := map[ObjectRef][]Finding{}
	for _, f := range r.Findings {
		byObj[f.Object] = append(byObj[f.Object], f)
	}
	out := junitSuites{Name: "rampart audit"}
	for _, a := range r.Audited {
		o := a.Object
		fs := byObj[o]
		s := junitSuite{Name: o.String(), File: a.File}
		if len(fs) == 0 {
			s.Cases = []junitCase{{Name: "no findings", ClassName: o.String(), File: a.File, Line: a.Line}}
		}
		for _, f := range fs {
			var refs []string
			for _, ref := range f.References {
				refs = append(refs, ref.String())
			}
			s.Cases = append(s.Cases, junitCase{
				Name:      f.ID + " " + f.Field,
				ClassName: o.String(),
				File:      f.File,
				Line:      f.Line,
				Failure: &junitFailure{
					Message: f.Message,
					Type:    f.Severity.String(),
					Text: fmt.Sprintf("%s\n%s (%s)\nat %s %s\nreferences: %s\nremediation: %s\n",
						f.Title, f.Message, f.Severity, f.Location(), f.Field, strings.Join(refs, ", "), f.Remediation),
				},
			})
			s.Failures++
		}
		s.Tests = len(s.Cases)
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
