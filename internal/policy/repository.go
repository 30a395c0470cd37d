package policy

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/labels"
	"github.com/rampartsec/rampart/internal/resource"
)

// Repository holds endpoints, namespaces and compiled policies, and the
// resolved policy of every endpoint identity. It is built from decoded
// objects and updated incrementally: a changed policy re-resolves only the
// identities it can select. A Repository is not safe for concurrent use.
type Repository struct {
	alloc      identity.Allocator
	namespaces map[string]map[string]string // name -> labels
	endpoints  map[string]*Endpoint         // Kind/ns/name -> endpoint
	policies   map[string]*compiled         // object key -> compiled policy
	byNS       map[string]map[string]*compiled
	clusterPol map[string]*compiled
	resolved   map[identity.ID]*Resolved
	idEps      map[identity.ID]map[string]*Endpoint // identity -> endpoints with it
	selCache   *selectorCache

	// named indexes endpoints by the port names they declare, for
	// egress named-port expansion; nil when stale.
	named map[string][]*Endpoint
	// tables memoizes verdict tables; cleared on every change.
	tables map[tableKey]*Table
}

type compiled struct {
	obj   *resource.Object
	key   string
	ns    string
	rules []*Rule
	sels  []*Selection
}

// Resolved is the policy of one identity in both directions.
type Resolved struct {
	Identity *identity.Identity
	Ingress  DirPolicy
	Egress   DirPolicy
}

// Dir returns the policy for d.
func (r *Resolved) Dir(d Direction) *DirPolicy {
	if d == Ingress {
		return &r.Ingress
	}
	return &r.Egress
}

// DirPolicy is what applies to an identity in one direction.
type DirPolicy struct {
	// Enforced means default deny: some selecting policy isolates the
	// identity in this direction.
	Enforced bool
	// Selections are the policies that select the identity here.
	Selections []*Selection
	// Rules are the rules that apply, deny and allow, in a stable order.
	Rules []*Rule
}

// NewRepository returns an empty repository that allocates identities
// from alloc (a new identity.Local when nil).
func NewRepository(alloc identity.Allocator) *Repository {
	if alloc == nil {
		alloc = identity.NewLocal()
	}
	return &Repository{
		alloc:      alloc,
		namespaces: map[string]map[string]string{},
		endpoints:  map[string]*Endpoint{},
		policies:   map[string]*compiled{},
		byNS:       map[string]map[string]*compiled{},
		clusterPol: map[string]*compiled{},
		resolved:   map[identity.ID]*Resolved{},
		idEps:      map[identity.ID]map[string]*Endpoint{},
		selCache:   newSelectorCache(),
	}
}

// Build returns a repository holding objs. Identities are allocated in the
// order of their sorted label sets, so the same manifests give the same
// identity numbers whatever order they come in. Objects that are neither
// workloads, namespaces nor network policies are ignored.
func Build(ctx context.Context, objs []*resource.Object, alloc identity.Allocator) (*Repository, error) {
	r := NewRepository(alloc)
	var eps []*Endpoint
	for _, o := range objs {
		if ns, ok := o.Obj.(*corev1.Namespace); ok {
			r.namespaces[ns.Name] = ns.Labels
			continue
		}
		if e := endpointFromObject(o); e != nil {
			eps = append(eps, e)
		}
	}
	for _, e := range eps {
		e.Identity = &identity.Identity{Labels: r.endpointLabels(e)}
	}
	slices.SortStableFunc(eps, func(a, b *Endpoint) int {
		return cmp.Compare(a.Identity.Labels.String(), b.Identity.Labels.String())
	})
	for _, e := range eps {
		if err := r.addEndpoint(ctx, e); err != nil {
			return nil, err
		}
	}
	for _, o := range objs {
		if isPolicy(o) {
			if _, err := r.compile(o); err != nil {
				return nil, err
			}
		}
	}
	for id := range r.idEps {
		r.resolve(id)
	}
	return r, nil
}

func isPolicy(o *resource.Object) bool {
	switch o.Obj.(type) {
	case *resource.CiliumNetworkPolicy:
		return true
	}
	return o.Kind == "NetworkPolicy" && o.APIVersion == "networking.k8s.io/v1"
}

func (r *Repository) endpointLabels(e *Endpoint) labels.Set {
	return identity.EndpointLabels(identity.EndpointMeta{
		Labels: e.Labels, Namespace: e.Namespace,
		NamespaceLabels: r.namespaces[e.Namespace], ServiceAccount: e.ServiceAccount,
	})
}

func endpointKey(e *Endpoint) string { return e.Kind + "/" + e.Namespace + "/" + e.Name }

func (r *Repository) addEndpoint(ctx context.Context, e *Endpoint) error {
	id, err := r.alloc.Allocate(ctx, r.endpointLabels(e))
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", e.Ref(), err)
	}
	e.Identity = id
	k := endpointKey(e)
	r.endpoints[k] = e
	if r.idEps[id.ID] == nil {
		r.idEps[id.ID] = map[string]*Endpoint{}
		r.selCache.addIdentity(id)
	}
	r.idEps[id.ID][k] = e
	r.named = nil
	r.tables = nil
	return nil
}

func (r *Repository) compile(o *resource.Object) (*compiled, error) {
	var (
		rules []*Rule
		sels  []*Selection
		err   error
	)
	if _, ok := o.Obj.(*resource.CiliumNetworkPolicy); ok {
		rules, sels, err = compileCilium(o)
	} else {
		rules, sels, err = compileNetworkPolicy(o)
	}
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", o.Ref(), o.Source, err)
	}
	c := &compiled{obj: o, key: o.Key(), ns: o.Namespace, rules: rules, sels: sels}
	r.add(c)
	return c, nil
}

func (r *Repository) add(c *compiled) {
	r.policies[c.key] = c
	if c.ns == "" {
		r.clusterPol[c.key] = c
		return
	}
	if r.byNS[c.ns] == nil {
		r.byNS[c.ns] = map[string]*compiled{}
	}
	r.byNS[c.ns][c.key] = c
}

// resolve recomputes the policy of one identity from the policies that can
// select it: those of its namespace and the cluster-wide ones.
func (r *Repository) resolve(id identity.ID) {
	var ident *identity.Identity
	for _, e := range r.idEps[id] {
		ident = e.Identity
		break
	}
	if ident == nil {
		delete(r.resolved, id)
		return
	}
	ns, _ := ident.Labels.Get(labels.NamespaceKey)
	res := &Resolved{Identity: ident}
	for _, c := range r.candidates(ns) {
		for _, s := range c.sels {
			if s.Subject.Matches(ident.Labels) {
				d := res.Dir(s.Direction)
				d.Selections = append(d.Selections, s)
				d.Enforced = d.Enforced || s.DefaultDeny
			}
		}
		for _, rule := range c.rules {
			if rule.Subject.Matches(ident.Labels) {
				d := res.Dir(rule.Direction)
				d.Rules = append(d.Rules, rule)
			}
		}
	}
	r.resolved[id] = res
	r.tables = nil
}

// candidates returns the policies that may select an identity of namespace
// ns, sorted by object key so that resolution is deterministic.
func (r *Repository) candidates(ns string) []*compiled {
	out := make([]*compiled, 0, len(r.byNS[ns])+len(r.clusterPol))
	for _, c := range r.byNS[ns] {
		out = append(out, c)
	}
	for _, c := range r.clusterPol {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *compiled) int { return strings.Compare(a.key, b.key) })
	return out
}

// UpsertPolicy adds or replaces a policy and re-resolves the identities
// its old or new version selects. It returns those identities, which the
// caller (the datapath sync) must reprogram. On error the repository is
// unchanged.
func (r *Repository) UpsertPolicy(o *resource.Object) ([]identity.ID, error) {
	if !isPolicy(o) {
		return nil, fmt.Errorf("%s is not a network policy", o.Ref())
	}
	old := r.policies[o.Key()]
	r.removePolicy(o.Key())
	c, err := r.compile(o)
	if err != nil {
		if old != nil { // keep the old version: nothing half-applied
			r.add(old)
		}
		return nil, err
	}
	return r.reresolve(old, c), nil
}

// DeletePolicy removes the policy with the given object key and re-resolves
// the identities it selected.
func (r *Repository) DeletePolicy(key string) []identity.ID {
	old := r.policies[key]
	if old == nil {
		return nil
	}
	r.removePolicy(key)
	return r.reresolve(old, nil)
}

func (r *Repository) removePolicy(key string) {
	c := r.policies[key]
	if c == nil {
		return
	}
	delete(r.policies, key)
	delete(r.clusterPol, key)
	if m := r.byNS[c.ns]; m != nil {
		delete(m, key)
	}
}

// reresolve re-resolves the identities that the old or the new version of
// a policy selects (either may be nil) and returns them sorted. Identities
// neither version selects cannot have changed.
func (r *Repository) reresolve(versions ...*compiled) []identity.ID {
	var ids []identity.ID
	for id, eps := range r.idEps {
		var ident *identity.Identity
		for _, e := range eps {
			ident = e.Identity
			break
		}
		if !slices.ContainsFunc(versions, func(c *compiled) bool { return c != nil && c.selects(ident) }) {
			continue
		}
		r.resolve(id)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// selects reports whether any selection or rule of c applies to ident.
func (c *compiled) selects(ident *identity.Identity) bool {
	if c.ns != "" {
		if ns, _ := ident.Labels.Get(labels.NamespaceKey); ns != c.ns {
			return false
		}
	}
	for _, s := range c.sels {
		if s.Subject.Matches(ident.Labels) {
			return true
		}
	}
	for _, rule := range c.rules {
		if rule.Subject.Matches(ident.Labels) {
			return true
		}
	}
	return false
}

// Resolved returns the resolved policy of id, or nil if no endpoint has it.
func (r *Repository) Resolved(id identity.ID) *Resolved { return r.resolved[id] }

// Endpoints returns every endpoint sorted by namespace/name, then kind.
func (r *Repository) Endpoints() []*Endpoint {
	out := slices.Collect(maps.Values(r.endpoints))
	slices.SortFunc(out, func(a, b *Endpoint) int {
		return cmp.Or(cmp.Compare(a.Ref(), b.Ref()), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// Identities returns the identities of all endpoints, sorted.
func (r *Repository) Identities() []identity.ID {
	return slices.Sorted(maps.Keys(r.idEps))
}

// Lookup finds an endpoint by "namespace/name" or "Kind/namespace/name". A
// bare "name" means the default namespace.
func (r *Repository) Lookup(ref string) (*Endpoint, error) {
	parts := strings.Split(ref, "/")
	switch len(parts) {
	case 1:
		parts = []string{"default", parts[0]}
	case 3:
		for _, e := range r.endpoints {
			if strings.EqualFold(e.Kind, parts[0]) && e.Namespace == parts[1] && e.Name == parts[2] {
				return e, nil
			}
		}
		return nil, fmt.Errorf("no workload %s in the input", ref)
	}
	if len(parts) != 2 {
		return nil, fmt.Errorf("invalid workload %q (want NAMESPACE/NAME or KIND/NAMESPACE/NAME)", ref)
	}
	var found []*Endpoint
	for _, e := range r.endpoints {
		if e.Namespace == parts[0] && e.Name == parts[1] {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no workload %s in the input", ref)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%s is ambiguous (a %s and a %s): write KIND/%s", ref, found[0].Kind, found[1].Kind, ref)
}

// EndpointByAddr returns the endpoint that owns addr, if any.
func (r *Repository) EndpointByAddr(addr string) *Endpoint {
	for _, e := range r.Endpoints() {
		for _, a := range e.IPs {
			if a.String() == addr {
				return e
			}
		}
	}
	return nil
}

// UpsertEndpoint adds or replaces a live endpoint (the node's workloads
// come from its endpoint manager, not from manifests) and gives it its
// identity. It returns the identity.
func (r *Repository) UpsertEndpoint(ctx context.Context, e *Endpoint) (identity.ID, error) {
	r.removeEndpoint(endpointKey(e))
	if err := r.addEndpoint(ctx, e); err != nil {
		return 0, err
	}
	r.resolve(e.Identity.ID)
	return e.Identity.ID, nil
}

// DeleteEndpoint removes the endpoint Kind/namespace/name.
func (r *Repository) DeleteEndpoint(kind, namespace, name string) {
	r.removeEndpoint(kind + "/" + namespace + "/" + name)
}

func (r *Repository) removeEndpoint(key string) {
	e := r.endpoints[key]
	if e == nil {
		return
	}
	delete(r.endpoints, key)
	if m := r.idEps[e.Identity.ID]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(r.idEps, e.Identity.ID)
			delete(r.resolved, e.Identity.ID)
			r.selCache.removeIdentity(e.Identity.ID)
		}
	}
	r.named, r.tables = nil, nil
}

// SetNamespace records the labels of a namespace. Endpoints in it get new
// identities, since namespace labels are part of an identity; it returns
// whether any endpoint changed identity.
func (r *Repository) SetNamespace(ctx context.Context, name string, lbls map[string]string) (bool, error) {
	r.namespaces[name] = lbls
	changed := false
	for _, e := range r.Endpoints() {
		if e.Namespace != name {
			continue
		}
		old := e.Identity.ID
		if _, err := r.UpsertEndpoint(ctx, e); err != nil {
			return changed, err
		}
		changed = changed || e.Identity.ID != old
	}
	return changed, nil
}

// NamespaceLabels returns the labels recorded for a namespace.
func (r *Repository) NamespaceLabels(name string) map[string]string { return r.namespaces[name] }
