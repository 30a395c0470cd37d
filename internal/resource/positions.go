package resource

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// positions finds the lines of field paths in one object's YAML tree. Paths
// use the form Kubernetes prints ("spec.ingress[0].ports[1].port"); a path
// may also leave out list indices, because encoding/json's type errors name
// fields that way, and then the first item is meant.
//
// Lines are looked up on demand by walking the tree rather than indexed
// while decoding: only error messages and findings ask for them, and
// indexing every field of every document cost more than parsing the YAML.
type positions struct {
	root *yaml.Node // the object's mapping node
}

// line returns the line of path or of its closest ancestor, else def.
func (p *positions) line(path string, def int) int {
	if p == nil || p.root == nil || path == "" {
		return def
	}
	n, line := p.root, def
	rest := path
	for rest != "" {
		n = resolveAlias(n)
		var next *yaml.Node
		var nline int
		if rest[0] == '[' {
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return line
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			next, nline = n.Content[i], n.Content[i].Line
			rest = rest[end+1:]
		} else {
			if n.Kind == yaml.SequenceNode && len(n.Content) > 0 {
				// A path without indices: look in the first item.
				n = resolveAlias(n.Content[0])
			}
			key, val, kline := fieldOf(n, rest)
			if val == nil {
				return line
			}
			next, nline = val, kline
			rest = rest[len(key):]
		}
		rest = strings.TrimPrefix(rest, ".")
		n, line = next, nline
	}
	return line
}

// fieldOf returns the longest key of mapping n that starts path and ends
// where a path segment ends, with its value and the key's line. Keys may
// contain dots (label keys such as app.kubernetes.io/name), hence the
// longest match rather than a split on ".". Merge keys ("<<") are followed.
func fieldOf(n *yaml.Node, path string) (string, *yaml.Node, int) {
	if n.Kind != yaml.MappingNode {
		return "", nil, 0
	}
	var (
		best     string
		bestVal  *yaml.Node
		bestLine int
	)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			srcs := []*yaml.Node{resolveAlias(v)}
			if srcs[0].Kind == yaml.SequenceNode {
				srcs = srcs[0].Content
			}
			for _, s := range srcs {
				if key, val, l := fieldOf(resolveAlias(s), path); val != nil && bestVal == nil {
					best, bestVal, bestLine = key, val, l
				}
			}
			continue
		}
		key := k.Value
		if len(key) <= len(best) && bestVal != nil || !strings.HasPrefix(path, key) {
			continue
		}
		if len(path) > len(key) && path[len(key)] != '.' && path[len(key)] != '[' {
			continue
		}
		best, bestVal, bestLine = key, v, k.Line
	}
	return best, bestVal, bestLine
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// sub returns the positions of the object at prefix inside p's document (a
// List item).
func (p *positions) sub(prefix string) *positions {
	n := p.root
	rest := prefix
	for rest != "" && n != nil {
		n = resolveAlias(n)
		if rest[0] == '[' {
			end := strings.IndexByte(rest, ']')
			i, err := strconv.Atoi(rest[1:max(end, 1)])
			if end < 0 || err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return &positions{}
			}
			n, rest = n.Content[i], rest[end+1:]
		} else {
			key, val, _ := fieldOf(n, rest)
			if val == nil {
				return &positions{}
			}
			n, rest = val, rest[len(key):]
		}
		rest = strings.TrimPrefix(rest, ".")
	}
	return &positions{root: n}
}
