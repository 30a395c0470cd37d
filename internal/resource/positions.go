package resource

import (
	"regexp"
	"strings"
)

// positions maps the field paths of one document to their lines. Paths use
// the form Kubernetes prints ("spec.ingress[0].ports[1].port"); each path is
// also indexed without its list indices, because encoding/json's type errors
// name fields that way.
type positions struct {
	exact   map[string]int
	noIndex map[string]int
}

func newPositions() *positions {
	return &positions{exact: map[string]int{}, noIndex: map[string]int{}}
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

func (p *positions) add(path string, line int) {
	p.exact[path] = line
	k := indexRE.ReplaceAllString(path, "")
	if _, ok := p.noIndex[k]; !ok {
		p.noIndex[k] = line
	}
}

// line returns the line of path or of its closest ancestor, else def.
func (p *positions) line(path string, def int) int {
	for path != "" {
		if l, ok := p.exact[path]; ok {
			return l
		}
		if l, ok := p.noIndex[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return def
}

// parentPath drops the last segment: "a.b[2]" -> "a.b", "a.b" -> "a".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}
