package resource

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	kjson "sigs.k8s.io/json"
)

// Input is one named chunk of YAML or JSON, usually a file.
type Input struct {
	Name string
	Data []byte
}

// maxNodes bounds the nodes one document may expand to, aliases included, so
// that a hostile "billion laughs" document cannot exhaust memory.
const maxNodes = 1 << 18

// maxDepth bounds nesting for the same reason; real manifests nest a few
// dozen levels.
const maxDepth = 256

// Decode decodes and validates every document of every input. It returns
// the objects in input order, or, when anything is wrong, no objects and an
// ErrorList with every problem found.
func Decode(inputs []Input) ([]*Object, error) {
	var (
		objs []*Object
		errs ErrorList
		seen = map[string]*Object{}
	)
	for _, in := range inputs {
		docs, derrs := decodeInput(in)
		errs = append(errs, derrs...)
		for _, o := range docs {
			if prev, ok := seen[o.Key()]; ok {
				errs = append(errs, o.Errorf("metadata.name", "%s is defined twice (first at %s)", o.Ref(), prev.Source))
				continue
			}
			seen[o.Key()] = o
			objs = append(objs, o)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return objs, nil
}

// DecodeBytes is Decode for a single input.
func DecodeBytes(name string, data []byte) ([]*Object, error) {
	return Decode([]Input{{Name: name, Data: data}})
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func decodeInput(in Input) ([]*Object, ErrorList) {
	var (
		objs []*Object
		errs ErrorList
	)
	dec := yaml.NewDecoder(bytes.NewReader(in.Data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The YAML parser cannot resynchronise after a syntax error, so
			// the rest of this input is not read.
			fe := &FieldError{File: in.Name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
			if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
				fe.Line, _ = strconv.Atoi(m[1])
				fe.Msg = strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "yaml: "), m[0]+":"))
			}
			errs = append(errs, fe)
			break
		}
		if len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
			continue // an empty document, as between two "---"
		}
		root := doc.Content[0]
		c := converter{pos: newPositions()}
		val, err := c.convert(root, "")
		src := Source{File: in.Name, Line: root.Line}
		if err != nil {
			errs = append(errs, &FieldError{File: in.Name, Line: c.errLine, Path: c.errPath, Msg: err.Error()})
			continue
		}
		o, oerrs := decodeDocument(src, val, c.pos)
		errs = append(errs, oerrs...)
		objs = append(objs, o...)
	}
	// Report problems in the order they appear in the file.
	slices.SortStableFunc(errs, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
	return objs, errs
}

// decodeDocument turns one generic document into typed objects: one, or the
// items of a v1 List.
func decodeDocument(src Source, val any, pos *positions) ([]*Object, ErrorList) {
	m, ok := val.(map[string]any)
	if !ok {
		return nil, ErrorList{{File: src.File, Line: src.Line, Msg: "document is not an object"}}
	}
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	if apiVersion == "v1" && kind == "List" {
		return decodeList(src, m, pos)
	}
	o, errs := decodeObject(src, m, pos, "")
	if o == nil {
		return nil, errs
	}
	return []*Object{o}, errs
}

func decodeList(src Source, m map[string]any, pos *positions) ([]*Object, ErrorList) {
	items, _ := m["items"].([]any)
	var (
		objs []*Object
		errs ErrorList
	)
	for i, it := range items {
		prefix := fmt.Sprintf("items[%d]", i)
		im, ok := it.(map[string]any)
		if !ok {
			errs = append(errs, &FieldError{File: src.File, Line: pos.line(prefix, src.Line), Path: prefix, Msg: "list item is not an object"})
			continue
		}
		isrc := Source{File: src.File, Line: pos.line(prefix, src.Line)}
		o, oerrs := decodeObject(isrc, im, pos.sub(prefix), prefix)
		errs = append(errs, oerrs...)
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, errs
}

// decodeObject decodes one object strictly into its registered type and
// validates it. prefix is the object's path inside its document ("" for a
// top-level object); errors carry document paths, positions object paths.
func decodeObject(src Source, m map[string]any, pos *positions, prefix string) (*Object, ErrorList) {
	fail := func(path, format string, args ...any) (*Object, ErrorList) {
		return nil, ErrorList{{File: src.File, Line: pos.line(path, src.Line), Path: join(prefix, path), Msg: fmt.Sprintf(format, args...)}}
	}
	apiVersion, ok := m["apiVersion"].(string)
	if !ok || apiVersion == "" {
		return fail("apiVersion", "apiVersion is required")
	}
	kindName, ok := m["kind"].(string)
	if !ok || kindName == "" {
		return fail("kind", "kind is required")
	}
	k, ok := registry[apiVersion+"/"+kindName]
	if !ok {
		return fail("kind", "unsupported kind %s %s (supported: %s)", apiVersion, kindName, supportedKinds())
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fail("", "%v", err)
	}
	typed := k.newObj()
	o := &Object{Source: src, APIVersion: apiVersion, Kind: kindName, Obj: typed, pos: pos}
	strict, err := kjson.UnmarshalStrict(data, typed)
	var errs ErrorList
	for _, se := range strict {
		path := ""
		var fe kjson.FieldError
		if errors.As(se, &fe) {
			path = fe.FieldPath()
		}
		msg := se.Error()
		if strings.HasPrefix(msg, "unknown field") {
			msg = "unknown field"
		} else if strings.HasPrefix(msg, "duplicate field") {
			msg = "duplicate field"
		}
		errs = append(errs, o.errorf(prefix, path, "%s", msg))
	}
	if err != nil {
		errs = append(errs, typeError(o, prefix, err))
		return nil, errs
	}
	meta := metaOf(typed)
	o.Name = meta.GetName()
	if k.namespaced {
		o.Namespace = meta.GetNamespace()
		if o.Namespace == "" {
			o.Namespace = "default"
			meta.SetNamespace("default")
		}
	} else {
		meta.SetNamespace("")
	}
	v := &validator{obj: o, base: prefix, pathNames: k.pathNames}
	v.meta(meta)
	if k.validate != nil {
		k.validate(v, typed)
	}
	errs = append(errs, v.errs...)
	if len(errs) > 0 {
		return nil, errs
	}
	return o, nil
}

// typeError turns a JSON type error into a FieldError at the field it names.
func typeError(o *Object, prefix string, err error) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return o.errorf(prefix, te.Field, "cannot use %s as %s", te.Value, te.Type)
	}
	msg := err.Error()
	// sigs.k8s.io/json's own type error prints like encoding/json's; keep
	// the part after "into Go struct field", which names the field.
	if _, rest, ok := strings.Cut(msg, "into Go struct field "); ok {
		field, typ, _ := strings.Cut(rest, " of type ")
		if _, f, ok := strings.Cut(field, "."); ok {
			return o.errorf(prefix, f, "cannot use %s as %s", valueDesc(msg), typ)
		}
	}
	return o.errorf(prefix, "", "%s", strings.TrimPrefix(msg, "json: "))
}

func valueDesc(msg string) string {
	if _, rest, ok := strings.Cut(msg, "cannot unmarshal "); ok {
		v, _, _ := strings.Cut(rest, " into")
		return v
	}
	return "value"
}

// errorf builds a FieldError for path inside an object that sits at prefix
// in its document.
func (o *Object) errorf(prefix, path, format string, args ...any) *FieldError {
	return &FieldError{File: o.Source.File, Line: o.Line(path), Path: join(prefix, path), Msg: fmt.Sprintf(format, args...)}
}

func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	}
	return prefix + "." + path
}

// converter turns a yaml.Node tree into the generic values encoding/json
// understands, recording the line of every field on the way.
type converter struct {
	pos       *positions
	nodes     int
	depth     int
	expanding map[*yaml.Node]bool // aliases being expanded, to refuse cycles
	errLine   int
	errPath   string
}

func (c *converter) fail(n *yaml.Node, path, format string, args ...any) error {
	c.errLine, c.errPath = n.Line, path
	return fmt.Errorf(format, args...)
}

func (c *converter) convert(n *yaml.Node, path string) (any, error) {
	c.nodes++
	if c.nodes > maxNodes {
		return nil, c.fail(n, path, "document too large (more than %d nodes after alias expansion)", maxNodes)
	}
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxDepth {
		return nil, c.fail(n, path, "document nested deeper than %d levels", maxDepth)
	}
	switch n.Kind {
	case yaml.AliasNode:
		if c.expanding[n.Alias] {
			return nil, c.fail(n, path, "recursive alias *%s", n.Value)
		}
		if c.expanding == nil {
			c.expanding = map[*yaml.Node]bool{}
		}
		c.expanding[n.Alias] = true
		defer delete(c.expanding, n.Alias)
		return c.convert(n.Alias, path)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.convert(n.Content[0], path)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.pos.add(p, item.Line)
			v, err := c.convert(item, p)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Tag == "!!merge" {
				if err := c.merge(out, vn, path); err != nil {
					return nil, err
				}
				continue
			}
			if kn.Kind != yaml.ScalarNode {
				return nil, c.fail(kn, path, "mapping key is not a string")
			}
			key := kn.Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			if _, dup := out[key]; dup {
				return nil, c.fail(kn, p, "duplicate key %q", key)
			}
			c.pos.add(p, kn.Line)
			v, err := c.convert(vn, p)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		return out, nil
	case yaml.ScalarNode:
		return c.scalar(n, path)
	}
	return nil, c.fail(n, path, "unsupported YAML node")
}

func (c *converter) merge(out map[string]any, vn *yaml.Node, path string) error {
	srcs := []*yaml.Node{vn}
	if vn.Kind == yaml.SequenceNode {
		srcs = vn.Content
	}
	for _, s := range srcs {
		v, err := c.convert(s, path)
		if err != nil {
			return err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(s, path, "merge key value is not a mapping")
		}
		for k, x := range m {
			if _, exists := out[k]; !exists {
				out[k] = x
			}
		}
	}
	return nil
}

func (c *converter) scalar(n *yaml.Node, path string) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, c.fail(n, path, "%v", err)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return u, nil
		}
		return nil, c.fail(n, path, "integer %s out of range", n.Value)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, c.fail(n, path, "%v", err)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, c.fail(n, path, "number %s is not allowed", n.Value)
		}
		return f, nil
	default:
		// Strings, timestamps and binary stay strings, as Kubernetes reads
		// them.
		return n.Value, nil
	}
}

// sub returns a view of p for an object nested at prefix (a List item).
func (p *positions) sub(prefix string) *positions {
	s := newPositions()
	for k, l := range p.exact {
		if rest, ok := strings.CutPrefix(k, prefix+"."); ok {
			s.add(rest, l)
		}
	}
	return s
}
