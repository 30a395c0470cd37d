package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rampartsec/rampart/internal/resource"
)

// ObjectPrefix is the prefix of every stored object. An object's key is
//
//	/rampart/v1/objects/<group or "core">/<kind>/<namespace or "_cluster">/<name>
//
// The API version is not part of the key, so the v1 and v1beta1 forms of an
// Istio policy are one object, as in resource.Object.Key.
const ObjectPrefix = "/rampart/v1/objects/"

const (
	coreGroup        = "core"
	clusterNamespace = "_cluster"
)

// Ref names a stored object.
type Ref struct {
	Group     string // API group; "" for the core group
	Kind      string
	Namespace string // "" for cluster-scoped kinds
	Name      string
}

// RefOf returns the Ref of o.
func RefOf(o *resource.Object) Ref {
	group, _, ok := strings.Cut(o.APIVersion, "/")
	if !ok {
		group = ""
	}
	return Ref{Group: group, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}

// Key returns the store key of the object r names.
func (r Ref) Key() string {
	group, ns := r.Group, r.Namespace
	if group == "" {
		group = coreGroup
	}
	if ns == "" {
		ns = clusterNamespace
	}
	return ObjectPrefix + group + "/" + r.Kind + "/" + ns + "/" + r.Name
}

// String returns "Kind/namespace/name", or "Kind/name" for cluster-scoped
// objects, as resource.Object.Ref does.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

func (r Ref) validate() error {
	for _, f := range []struct{ what, v string }{{"kind", r.Kind}, {"name", r.Name}, {"group", r.Group}, {"namespace", r.Namespace}} {
		if f.v == "" && (f.what == "kind" || f.what == "name") {
			return fmt.Errorf("object %s has no %s", r, f.what)
		}
		if strings.Contains(f.v, "/") {
			return fmt.Errorf("object %s: %s %q contains '/'", r, f.what, f.v)
		}
	}
	if r.Namespace == clusterNamespace || r.Group == coreGroup {
		return fmt.Errorf("object %s: namespace %q and group %q are reserved in store keys", r, clusterNamespace, coreGroup)
	}
	return nil
}

// ParseKey returns the Ref of an object key.
func ParseKey(key string) (Ref, error) {
	rest, ok := strings.CutPrefix(key, ObjectPrefix)
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return Ref{}, fmt.Errorf("%q is not an object key", key)
	}
	r := Ref{Group: parts[0], Kind: parts[1], Namespace: parts[2], Name: parts[3]}
	if r.Group == coreGroup {
		r.Group = ""
	}
	if r.Namespace == clusterNamespace {
		r.Namespace = ""
	}
	return r, nil
}

// EncodeObject returns o as stored: Kubernetes-shaped JSON with apiVersion,
// kind, metadata and the object's other top-level fields (spec, data,
// rules, ...). Status is left out: it is observed state, written by Rampart
// itself and not part of what a user applies. Empty metadata fields that
// encode as null (creationTimestamp) are left out too.
func EncodeObject(o *resource.Object) ([]byte, error) {
	if o.Obj == nil {
		return nil, fmt.Errorf("encode %s: no typed object", o.Ref())
	}
	raw, err := json.Marshal(o.Obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Ref(), err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("encode %s: %w", o.Ref(), err)
	}
	delete(top, "status")
	if top["apiVersion"], err = json.Marshal(o.APIVersion); err != nil {
		return nil, err
	}
	if top["kind"], err = json.Marshal(o.Kind); err != nil {
		return nil, err
	}
	if md, ok := top["metadata"]; ok {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(md, &m); err != nil {
			return nil, fmt.Errorf("encode %s: metadata: %w", o.Ref(), err)
		}
		for k, v := range m {
			if bytes.Equal(v, []byte("null")) {
				delete(m, k)
			}
		}
		if top["metadata"], err = json.Marshal(m); err != nil {
			return nil, err
		}
	}
	return json.Marshal(top)
}

// DecodeObject decodes a stored object with resource.DecodeBytes, so that it
// is validated exactly as user input is; errors name the source
// "store:<key>". The object must be the one key names.
func DecodeObject(key string, data []byte) (*resource.Object, error) {
	objs, err := resource.DecodeBytes("store:"+key, data)
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("store:%s: holds %d objects, want 1", key, len(objs))
	}
	if got := RefOf(objs[0]).Key(); got != key {
		return nil, fmt.Errorf("store:%s: holds %s, whose key is %s", key, objs[0].Ref(), got)
	}
	return objs[0], nil
}

// PutObjects implements Store.
func (s *Etcd) PutObjects(ctx context.Context, objs []*resource.Object) error {
	puts := make([]KV, 0, len(objs))
	seen := make(map[string]*resource.Object, len(objs))
	for _, o := range objs {
		r := RefOf(o)
		if err := r.validate(); err != nil {
			return fmt.Errorf("put objects: %w", err)
		}
		key := r.Key()
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("put objects: %s is given twice (%s and %s)", o.Ref(), prev.Source, o.Source)
		}
		seen[key] = o
		data, err := EncodeObject(o)
		if err != nil {
			return fmt.Errorf("put objects: %w", err)
		}
		puts = append(puts, KV{Key: key, Value: data})
	}
	if _, err := s.Apply(ctx, puts, nil); err != nil {
		return fmt.Errorf("put objects: %w", err)
	}
	return nil
}

// DeleteObjects implements Store.
func (s *Etcd) DeleteObjects(ctx context.Context, objs []*resource.Object) error {
	keys := make([]string, 0, len(objs))
	conds := make([]Condition, 0, len(objs))
	byKey := make(map[string]Ref, len(objs))
	for _, o := range objs {
		r := RefOf(o)
		if err := r.validate(); err != nil {
			return fmt.Errorf("delete objects: %w", err)
		}
		k := r.Key()
		if _, dup := byKey[k]; dup {
			return fmt.Errorf("delete objects: %s is given twice", r)
		}
		byKey[k] = r
		keys = append(keys, k)
		conds = append(conds, KeyExists(k))
	}
	_, err := s.Apply(ctx, nil, keys, conds...)
	var ce *ConflictError
	if errors.As(err, &ce) {
		missing := make([]string, len(ce.Failed))
		for i, c := range ce.Failed {
			missing[i] = byKey[c.Key()].String()
		}
		return fmt.Errorf("delete objects: %s: %w; nothing deleted", strings.Join(missing, ", "), ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete objects: %w", err)
	}
	return nil
}

// kindSet matches object kinds; an empty set matches every kind.
type kindSet []string

func (k kindSet) match(r Ref) bool { return len(k) == 0 || slices.Contains(k, r.Kind) }

// ListObjects implements Store. A stored object that no longer decodes is an
// error naming its key.
func (s *Etcd) ListObjects(ctx context.Context, kinds ...string) ([]*resource.Object, int64, error) {
	kvs, rev, err := s.List(ctx, ObjectPrefix)
	if err != nil {
		return nil, 0, fmt.Errorf("list objects: %w", err)
	}
	var objs []*resource.Object
	for _, kv := range kvs {
		r, err := ParseKey(kv.Key)
		if err != nil {
			return nil, 0, fmt.Errorf("list objects: %w", err)
		}
		if !kindSet(kinds).match(r) {
			continue
		}
		o, err := DecodeObject(kv.Key, kv.Value)
		if err != nil {
			return nil, 0, fmt.Errorf("list objects: %w", err)
		}
		objs = append(objs, o)
	}
	return objs, rev, nil
}

// ObjectEvent is one change to a stored object.
type ObjectEvent struct {
	Type     EventType
	Ref      Ref              // the object changed; zero for most errors
	Object   *resource.Object // the new object for EventPut; nil otherwise
	Revision int64
	Err      error // for EventError: a watch error, or an object that does not decode
}

// WatchObjects implements Store. A stored object that does not decode
// arrives as an EventError naming it, and the watch goes on.
func (s *Etcd) WatchObjects(ctx context.Context, fromRevision int64, kinds ...string) <-chan ObjectEvent {
	out := make(chan ObjectEvent)
	in := s.Watch(ctx, ObjectPrefix, fromRevision)
	go func() {
		defer close(out)
		for ev := range in {
			oe := ObjectEvent{Type: ev.Type, Revision: ev.Revision, Err: ev.Err}
			if ev.Type != EventError {
				r, err := ParseKey(ev.Key)
				switch {
				case err != nil:
					oe.Type, oe.Err = EventError, err
				case !kindSet(kinds).match(r):
					continue
				default:
					oe.Ref = r
				}
				if oe.Type == EventPut {
					if oe.Object, err = DecodeObject(ev.Key, ev.Value); err != nil {
						oe.Type, oe.Object, oe.Err = EventError, nil, err
					}
				}
			}
			select {
			case out <- oe:
			case <-ctx.Done():
				for range in { // the store's goroutine sees ctx and closes in
				}
				return
			}
		}
	}()
	return out
}
