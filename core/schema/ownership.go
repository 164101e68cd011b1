package schema

import (
	"fmt"
	"slices"
	"strings"
)

// Path is a chain of many-to-one relations from a model up to the root
// model. The first hop is held by the model itself, the last one targets
// the root. The root's own path is empty.
type Path []*Relation

// Ownership is the ownership DAG of a schema: which models are synced and
// how each record reaches the root record whose primary key is its scope
// key. It is immutable once built and safe for concurrent use.
type Ownership struct {
	Root *Model

	synced []*Model // topological order, root first
	paths  map[string][]Path
}

// BuildOwnership builds the ownership DAG of s for the given root model.
// Models named in exclude, and the client's bookkeeping model
// (ChangelogModel) in any case, are not synced; relations into them are not
// ownership edges.
//
// The root must exist, must not be excluded, and must have a single-field
// primary key of type String, Int or BigInt (the scope key). Every other
// synced model must reach the root through many-to-one relations, and the
// relations among synced models must not form a cycle (self-relations
// included). Violations of the last two rules are reported together as an
// ErrorList; the others as a single error.
func BuildOwnership(s *Schema, root string, exclude []string) (*Ownership, error) {
	excluded := map[string]bool{}
	for _, name := range exclude {
		if s.Model(name) == nil {
			return nil, fmt.Errorf("schema: excluded model %q does not exist", name)
		}
		excluded[name] = true
	}
	if s.Model(ChangelogModel) != nil {
		excluded[ChangelogModel] = true
	}
	r := s.Model(root)
	switch {
	case r == nil:
		return nil, fmt.Errorf("schema: root model %q does not exist", root)
	case root == ChangelogModel:
		return nil, &Error{Pos: r.Pos, Msg: fmt.Sprintf("root model %q is the client's changelog (prisma-idb's bookkeeping), which is never synced", root)}
	case excluded[root]:
		return nil, fmt.Errorf("schema: root model %q is excluded", root)
	case len(r.PrimaryKey) != 1:
		return nil, &Error{Pos: r.Pos, Msg: fmt.Sprintf("root model %q must have a single-field primary key", root)}
	}
	if f := r.Field(r.PrimaryKey[0]); f.Type != String && f.Type != Int && f.Type != BigInt {
		return nil, &Error{Pos: f.Pos, Msg: fmt.Sprintf("root model %q: primary key %q must be of type String, Int or BigInt, not %s", root, f.Name, f.Type)}
	}

	o := &Ownership{Root: r, paths: map[string][]Path{}}
	var synced []*Model
	for _, m := range s.Models {
		if !excluded[m.Name] {
			synced = append(synced, m)
		}
	}
	edges := func(m *Model) []*Relation {
		var out []*Relation
		for _, rel := range m.Relations {
			if !excluded[rel.Target] {
				out = append(out, rel)
			}
		}
		return out
	}

	errs := cycles(s, synced, edges)
	reach := map[string]bool{root: true}
	for changed := true; changed; {
		changed = false
		for _, m := range synced {
			if reach[m.Name] {
				continue
			}
			for _, rel := range edges(m) {
				if reach[rel.Target] {
					reach[m.Name], changed = true, true
					break
				}
			}
		}
	}
	for _, m := range synced {
		if !reach[m.Name] {
			errs = append(errs, &Error{Pos: m.Pos, Msg: fmt.Sprintf("model %s cannot reach root model %s", m.Name, root)})
		}
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}

	// Topological order, parents first; ties in source order.
	placed := map[string]bool{}
	o.synced = append(o.synced, r)
	placed[root] = true
	for len(o.synced) < len(synced) {
		for _, m := range synced {
			if placed[m.Name] || slices.ContainsFunc(edges(m), func(rel *Relation) bool { return !placed[rel.Target] }) {
				continue
			}
			o.synced = append(o.synced, m)
			placed[m.Name] = true
			break
		}
	}

	o.paths[root] = []Path{{}}
	for _, m := range o.synced[1:] {
		var ps []Path
		for _, rel := range edges(m) {
			for _, p := range o.paths[rel.Target] {
				ps = append(ps, append(Path{rel}, p...))
			}
		}
		slices.SortStableFunc(ps, func(a, b Path) int { return len(a) - len(b) })
		o.paths[m.Name] = ps
	}
	return o, nil
}

// cycles reports one cycle per strongly connected component of the
// relation graph among synced models, starting at the component's first
// model in source order.
func cycles(s *Schema, synced []*Model, edges func(*Model) []*Relation) ErrorList {
	// Tarjan's algorithm.
	index, low := map[string]int{}, map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var sccs [][]string
	var visit func(m *Model)
	visit = func(m *Model) {
		index[m.Name], low[m.Name] = len(index), len(index)
		stack = append(stack, m.Name)
		onStack[m.Name] = true
		for _, rel := range edges(m) {
			if _, seen := index[rel.Target]; !seen {
				visit(s.Model(rel.Target))
				low[m.Name] = min(low[m.Name], low[rel.Target])
			} else if onStack[rel.Target] {
				low[m.Name] = min(low[m.Name], index[rel.Target])
			}
		}
		if low[m.Name] == index[m.Name] {
			var scc []string
			for {
				n := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[n] = false
				scc = append(scc, n)
				if n == m.Name {
					break
				}
			}
			sccs = append(sccs, scc)
		}
	}
	for _, m := range synced {
		if _, seen := index[m.Name]; !seen {
			visit(m)
		}
	}

	var errs ErrorList
	for _, scc := range sccs {
		var start *Model
		for _, m := range synced {
			if slices.Contains(scc, m.Name) {
				start = m
				break
			}
		}
		// Shortest cycle from start back to itself within the component.
		prev := map[string]string{}
		queue := []string{start.Name}
		found := false
		for len(queue) > 0 && !found {
			n := queue[0]
			queue = queue[1:]
			for _, rel := range edges(s.Model(n)) {
				if rel.Target == start.Name {
					prev[start.Name], found = n, true
					break
				}
				if _, seen := prev[rel.Target]; !seen && slices.Contains(scc, rel.Target) {
					prev[rel.Target] = n
					queue = append(queue, rel.Target)
				}
			}
		}
		if !found {
			continue // a single model without a self-relation
		}
		cycle := []string{start.Name}
		for n := prev[start.Name]; n != start.Name; n = prev[n] {
			cycle = append(cycle, n)
		}
		cycle = append(cycle, start.Name)
		slices.Reverse(cycle)
		errs = append(errs, &Error{Pos: start.Pos, Msg: "ownership cycle: " + strings.Join(cycle, " -> ")})
	}
	return errs
}

// Paths returns every path from the model to the root, shortest first
// (ties in source order of the relation fields). The root has a single,
// empty path; a model that is not synced has none. The result must not be
// modified.
func (o *Ownership) Paths(model string) []Path { return o.paths[model] }

// Synced returns the synced models in topological order: the root first,
// every model after the models it references. The result must not be
// modified.
func (o *Ownership) Synced() []*Model { return o.synced }

// IsSynced reports whether the model is synced (it exists and is not
// excluded).
func (o *Ownership) IsSynced(model string) bool { _, ok := o.paths[model]; return ok }

// ScopeField returns the root's primary key field, whose value (as a
// string) is the scope key.
func (o *Ownership) ScopeField() *Field { return o.Root.Field(o.Root.PrimaryKey[0]) }
