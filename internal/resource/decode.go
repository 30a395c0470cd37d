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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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
	for _, r := range decodeAll(inputs) {
		errs = append(errs, r.errs...)
		for _, o := range r.objs {
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

// decoded is what decodeInput returned for one input.
type decoded struct {
	objs []*Object
	errs ErrorList
}

// decodeAll decodes inputs on up to GOMAXPROCS goroutines, since inputs are
// independent; results keep the order of inputs so that errors and
// "defined twice" reports do not depend on scheduling.
func decodeAll(inputs []Input) []decoded {
	out := make([]decoded, len(inputs))
	workers := min(runtime.GOMAXPROCS(0), len(inputs))
	if workers <= 1 {
		for i, in := range inputs {
			out[i].objs, out[i].errs = decodeInput(in)
		}
		return out
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(inputs) {
					return
				}
				out[i].objs, out[i].errs = decodeInput(inputs[i])
			}
		})
	}
	wg.Wait()
	return out
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
		var c converter
		val, err := c.convert(root)
		src := Source{File: in.Name, Line: root.Line}
		if err != nil {
			errs = append(errs, &FieldError{File: in.Name, Line: c.errLine, Path: c.errPath, Msg: err.Error()})
			continue
		}
		o, oerrs := decodeDocument(src, val, &positions{root: root})
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
	data, err := appendJSON(nil, m)
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
// understands. It keeps the path to the current node as a stack of
// segments and renders it only for an error: building a path string for
// every field of every document was a large part of decoding.
type converter struct {
	nodes     int
	stack     []pathSeg
	expanding map[*yaml.Node]bool // aliases being expanded, to refuse cycles
	errLine   int
	errPath   string
}

// pathSeg is a mapping key, or a list index when key is empty.
type pathSeg struct {
	key   string
	index int
}

// path renders the stack in the form Kubernetes prints.
func (c *converter) path() string {
	var b strings.Builder
	for _, s := range c.stack {
		if s.key == "" {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

func (c *converter) fail(n *yaml.Node, format string, args ...any) error {
	c.errLine, c.errPath = n.Line, c.path()
	return fmt.Errorf(format, args...)
}

func (c *converter) convert(n *yaml.Node) (any, error) {
	c.nodes++
	if c.nodes > maxNodes {
		return nil, c.fail(n, "document too large (more than %d nodes after alias expansion)", maxNodes)
	}
	if len(c.stack) > maxDepth {
		return nil, c.fail(n, "document nested deeper than %d levels", maxDepth)
	}
	switch n.Kind {
	case yaml.AliasNode:
		if c.expanding[n.Alias] {
			return nil, c.fail(n, "recursive alias *%s", n.Value)
		}
		if c.expanding == nil {
			c.expanding = map[*yaml.Node]bool{}
		}
		c.expanding[n.Alias] = true
		defer delete(c.expanding, n.Alias)
		return c.convert(n.Alias)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.convert(n.Content[0])
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			c.stack = append(c.stack, pathSeg{index: i})
			v, err := c.convert(item)
			if err != nil {
				return nil, err
			}
			c.stack = c.stack[:len(c.stack)-1]
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Tag == "!!merge" {
				if err := c.merge(out, vn); err != nil {
					return nil, err
				}
				continue
			}
			if kn.Kind != yaml.ScalarNode {
				return nil, c.fail(kn, "mapping key is not a string")
			}
			key := kn.Value
			c.stack = append(c.stack, pathSeg{key: key})
			if _, dup := out[key]; dup {
				return nil, c.fail(kn, "duplicate key %q", key)
			}
			v, err := c.convert(vn)
			if err != nil {
				return nil, err
			}
			c.stack = c.stack[:len(c.stack)-1]
			out[key] = v
		}
		return out, nil
	case yaml.ScalarNode:
		return c.scalar(n)
	}
	return nil, c.fail(n, "unsupported YAML node")
}

func (c *converter) merge(out map[string]any, vn *yaml.Node) error {
	srcs := []*yaml.Node{vn}
	if vn.Kind == yaml.SequenceNode {
		srcs = vn.Content
	}
	for _, s := range srcs {
		v, err := c.convert(s)
		if err != nil {
			return err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(s, "merge key value is not a mapping")
		}
		for k, x := range m {
			if _, exists := out[k]; !exists {
				out[k] = x
			}
		}
	}
	return nil
}

// scalar converts a scalar by its resolved YAML tag. The common forms
// (decimal integers, true/false, plain decimals) are parsed directly; the
// rest (0x1F, 1_000, .inf, ...) go through yaml.v3's own resolution.
func (c *converter) scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		switch n.Value {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, c.fail(n, "%v", err)
		}
		return b, nil
	case "!!int":
		// yaml.v3 reads "010" as octal, so only forms without a leading
		// zero take the fast path.
		if d := strings.TrimLeft(n.Value, "+-"); len(d) == 1 || len(d) > 1 && d[0] != '0' {
			if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
				return i, nil
			}
		}
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return u, nil
		}
		return nil, c.fail(n, "integer %s out of range", n.Value)
	case "!!float":
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			if err := n.Decode(&f); err != nil {
				return nil, c.fail(n, "%v", err)
			}
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, c.fail(n, "number %s is not allowed", n.Value)
		}
		return f, nil
	default:
		// Strings, timestamps and binary stay strings, as Kubernetes reads
		// them.
		return n.Value, nil
	}
}
