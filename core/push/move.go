package push

import (
	"context"
	"errors"
	"fmt"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
)

// extraEntry is a changelog entry an event writes besides its own: the
// entries of a move between scopes.
type extraEntry struct {
	model   *schema.Model
	pk      []any
	op      changelog.Operation
	scope   string
	eventID string // unique per tenant: the event's id with a ~moved-… suffix
	after   bool   // written after the event's own entry
}

// MovedSuffix marks the outbox event ids of the entries a move writes;
// client event ids may not contain it.
const MovedSuffix = "~moved-"

// move applies the update of it (currently cur, in scope from) to the set
// and returns the entries that carry the record and its descendants from
// scope from to scope to: a delete in the old scope before the update in
// the new one for the record itself; a delete in the old scope and an
// update in the new one for each descendant whose scope changes with it.
// Authorizing the record's update in both scopes authorizes its subtree.
func (s *Service) move(ctx context.Context, set *scope.Set, it *item, cur schema.Record, from, to string) ([]extraEntry, error) {
	subtree, err := s.subtree(ctx, set, it.model.Name, cur)
	if err != nil {
		return nil, err
	}
	before := make([]string, len(subtree))
	for i, n := range subtree {
		if before[i], err = firstScope(ctx, set, n); err != nil {
			return nil, err
		}
	}
	set.Put(it.model.Name, it.pk, it.rec)
	extra := []extraEntry{{model: it.model, pk: it.pk, op: changelog.Delete, scope: from, eventID: it.ev.ID + MovedSuffix + "out"}}
	for i, n := range subtree {
		after, err := firstScope(ctx, set, n)
		if err != nil {
			return nil, err
		}
		if after == before[i] {
			continue
		}
		m := s.sch.Model(n.Model)
		pk := m.Key(n.Rec)
		id := it.ev.ID + MovedSuffix + "%s:" + n.Model + scope.KeyJSON(pk)
		if before[i] != "" {
			extra = append(extra, extraEntry{model: m, pk: pk, op: changelog.Delete, scope: before[i], eventID: fmt.Sprintf(id, "out")})
		}
		if after != "" {
			extra = append(extra, extraEntry{model: m, pk: pk, op: changelog.Update, scope: after, eventID: fmt.Sprintf(id, "in"), after: true})
		}
	}
	return extra, nil
}

// subtree returns every descendant of the record r of model, parents
// before children.
func (s *Service) subtree(ctx context.Context, set *scope.Set, model string, r schema.Record) ([]scope.Node, error) {
	seen := map[string]bool{}
	var out []scope.Node
	queue := []scope.Node{{Model: model, Rec: r}}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		children, err := set.Children(ctx, n.Model, n.Rec)
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			key := c.Model + scope.KeyJSON(s.sch.Model(c.Model).Key(c.Rec))
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out, nil
}

// firstScope is the scope a record's entries go to: the first its
// ownership paths resolve to, or "" when none does.
func firstScope(ctx context.Context, set *scope.Set, n scope.Node) (string, error) {
	scopes, err := set.Scopes(ctx, n.Model, n.Rec)
	if errors.Is(err, scope.ErrNoScope) || errors.Is(err, scope.ErrMissingParent) {
		return "", nil
	}
	if err != nil || len(scopes) == 0 {
		return "", err
	}
	return scopes[0], nil
}
