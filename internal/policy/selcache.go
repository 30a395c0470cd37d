package policy

import (
	"slices"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/labels"
)

// selectorCache remembers which identities each distinct peer selector
// selects, so that expanding many rules that share selectors costs one
// match per (selector, identity) pair. Identities added later are matched
// against the cached selectors as they arrive.
type selectorCache struct {
	identities []*identity.Identity
	selected   map[string][]identity.ID
	selectors  map[string]labels.Selector
}

func newSelectorCache() *selectorCache {
	return &selectorCache{
		identities: identity.AllReserved(),
		selected:   map[string][]identity.ID{},
		selectors:  map[string]labels.Selector{},
	}
}

func (c *selectorCache) addIdentity(id *identity.Identity) {
	c.identities = append(c.identities, id)
	for k, sel := range c.selectors {
		if sel.Matches(id.Labels) {
			c.selected[k] = append(c.selected[k], id.ID)
			slices.Sort(c.selected[k])
		}
	}
}

// get returns the sorted identities sel selects. The slice is shared; do not
// modify it.
func (c *selectorCache) get(sel labels.Selector) []identity.ID {
	k := sel.String()
	if ids, ok := c.selected[k]; ok {
		return ids
	}
	var ids []identity.ID
	for _, id := range c.identities {
		if sel.Matches(id.Labels) {
			ids = append(ids, id.ID)
		}
	}
	slices.Sort(ids)
	c.selectors[k] = sel
	c.selected[k] = ids
	return ids
}

// removeIdentity forgets an identity no endpoint has any more, so that
// tables stop listing it.
func (c *selectorCache) removeIdentity(id identity.ID) {
	c.identities = slices.DeleteFunc(c.identities, func(i *identity.Identity) bool { return i.ID == id })
	for k, ids := range c.selected {
		if i, ok := slices.BinarySearch(ids, id); ok {
			c.selected[k] = slices.Delete(slices.Clone(ids), i, i+1)
		}
	}
}
