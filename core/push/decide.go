package push

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/tracing"
)

// change is one accepted event's effect.
type change struct {
	idx   int
	op    changelog.Operation
	scope string
	extra []extraEntry // a move's entries
	// keepsRefs: an upsert of a new record, or an update that leaves every
	// foreign key as it was. Such an upsert commutes with the batch's
	// earlier deletes of other records: had one of those removed its
	// parent, the upsert would have been refused (MISSING_PARENT).
	keepsRefs bool
}

// decider decides the events of one batch against the tenant's state as
// the batch changes it: scope, policy, moves between scopes, and the order
// the batch takes effect in.
type decider struct {
	s     *Service
	who   *caller
	reads Reads
	set   *scope.Set
	// lastScopes: the scope of the newest entry of each record a delete
	// names that is not stored (by model + key JSON).
	lastScopes map[string]string
	// began: the scopes of the stored records the batch updates or
	// deletes, as they were when the batch began (by item key).
	began map[string][]string
	// placed: the scope each record the batch wrote was written to.
	placed map[string]string
}

func (s *Service) decider(who *caller, reads Reads) *decider {
	return &decider{s: s, who: who, reads: reads, set: scope.NewSet(s.sch, s.own, reads),
		began: map[string][]string{}, placed: map[string]string{}}
}

// decideAllTraced is decideAll in the span push.policy: scope, parent
// and policy checks of the events live.
func (d *decider) decideAllTraced(ctx context.Context, items []*item, live []int) (_ []change, _ verdicts, err error) {
	ctx, span := tracing.Start(ctx, "push.policy")
	defer func() { tracing.End(span, err) }()
	tracing.Int(span, "syncplane.events", len(live))
	return d.decideAll(ctx, items, live)
}

// decideAll decides the events live (indexes into items) and returns the
// accepted changes, in the order they take effect, and the verdicts on the
// refused events.
//
// A batch takes effect in dependency order whatever its order: an event
// whose parent is missing waits until the rest of the batch has been
// decided and is tried again, round after round while rounds make
// progress, so a child sent before its parent is applied after it. Later
// events on the same record wait with it, so that events on one record
// always take effect in the order sent. Deletes need no reordering: a
// record's scope is the one it had when the batch began when its parent
// is gone (see decide).
func (d *decider) decideAll(ctx context.Context, items []*item, live []int) ([]change, verdicts, error) {
	if err := d.load(ctx, items, live); err != nil {
		return nil, nil, err
	}
	var changes []change
	out := verdicts{}
	missing := map[int]*scope.MissingParentError{}
	final := false
	for pending := live; len(pending) > 0; {
		var waiting []int
		waits := map[string]bool{} // records with a waiting event
		for _, i := range pending {
			it := items[i]
			if !final && waits[it.key()] {
				waiting = append(waiting, i)
				continue
			}
			c, evErr, mp, err := d.decide(ctx, it)
			if err != nil {
				return nil, nil, err
			}
			if mp != nil && !final {
				waiting = append(waiting, i)
				waits[it.key()] = true
				continue
			}
			if mp != nil {
				missing[i] = mp
			}
			if evErr != nil {
				out[i] = refused(evErr)
				continue
			}
			c.idx = i
			changes = append(changes, c)
		}
		// A round that decided nothing ends the waiting: the last round
		// decides every event that is left.
		final = final || len(waiting) == len(pending)
		pending = waiting
	}
	if err := d.classify(ctx, items, missing, out); err != nil {
		return nil, nil, err
	}
	return changes, out, nil
}

// load fetches in bulk what deciding the batch needs: the records the
// events touch, the ancestors of those and of the payloads (prefetch), the
// last known scope of records that deletes name, and the scopes the
// stored records had when the batch began.
func (d *decider) load(ctx context.Context, items []*item, live []int) error {
	set := d.set
	if err := d.prefetch(ctx, items, live); err != nil {
		return err
	}
	missing := map[string][]string{}
	for _, i := range live {
		it := items[i]
		if it.ev.Operation == string(changelog.Create) {
			continue
		}
		cur, err := set.Get(ctx, it.model.Name, it.pk)
		if err != nil {
			return err
		}
		if cur == nil {
			if it.ev.Operation == string(changelog.Delete) {
				// Deletes of records that are not stored find their scope
				// in the changelog.
				missing[it.model.Name] = append(missing[it.model.Name], scope.KeyJSON(it.pk))
			}
			continue
		}
		if _, ok := d.began[it.key()]; ok {
			continue
		}
		scopes, err := set.Scopes(ctx, it.model.Name, cur)
		if err != nil && !errors.Is(err, scope.ErrNoScope) && !errors.Is(err, scope.ErrMissingParent) {
			return err
		}
		d.began[it.key()] = scopes
	}
	d.lastScopes = map[string]string{}
	for m, kps := range missing {
		got, err := d.reads.LastScopes(ctx, m, kps)
		if err != nil {
			return err
		}
		for kp, sc := range got {
			d.lastScopes[m+kp] = sc
		}
	}
	return nil
}

// prefetch loads the records that the events idx (indexes into items)
// touch and the ancestors of those and of their payloads, one query per
// model and level (one round trip per level on PostgreSQL); records
// already in the set are not loaded again.
func (d *decider) prefetch(ctx context.Context, items []*item, idx []int) error {
	byModel := map[string][][]any{}
	payloads := map[string][]schema.Record{}
	var order []string
	for _, i := range idx {
		it := items[i]
		if _, ok := byModel[it.model.Name]; !ok {
			order = append(order, it.model.Name)
		}
		byModel[it.model.Name] = append(byModel[it.model.Name], it.pk)
		if it.rec != nil {
			payloads[it.model.Name] = append(payloads[it.model.Name], it.rec)
		}
	}
	refs := make([]scope.Ref, 0, len(order))
	for _, m := range order {
		refs = append(refs, scope.Ref{Model: m, Fields: d.s.sch.Model(m).PrimaryKey, Keys: byModel[m]})
	}
	return d.set.LoadFor(ctx, refs, payloads)
}

// decide decides one event against the batch's state so far and, when
// it is accepted, applies it to the set. A non-nil MissingParentError
// says the event was refused for a missing parent (evErr is then
// MISSING_PARENT, retryable until classify says otherwise).
func (d *decider) decide(ctx context.Context, it *item) (change, *EventError, *scope.MissingParentError, error) {
	s, who, set := d.s, d.who, d.set
	m := it.model
	op := changelog.Operation(it.ev.Operation)
	act := string(op)
	cur, err := set.Get(ctx, m.Name, it.pk)
	if err != nil {
		return change{}, nil, nil, err
	}
	// The scope the record is in now must allow the action.
	var curScope string
	if cur != nil {
		scopes, err := d.currentScopes(ctx, it, cur)
		if err != nil {
			return change{}, nil, nil, err
		}
		if curScope, err = s.allowed(who, scopes, m.Name, act); err != nil {
			return change{}, nil, nil, err
		}
		if curScope == "" {
			return change{}, fail(ScopeViolation, false, "%s %v belongs to a scope where %q may not %s", m.Name, it.pk, who.id, act), nil, nil
		}
	}
	if op == changelog.Delete {
		target := curScope
		if cur == nil {
			scopes, evErr, err := d.goneScopes(ctx, it)
			if err != nil || evErr != nil {
				return change{}, evErr, nil, err
			}
			if target, err = s.allowed(who, scopes, m.Name, act); err != nil {
				return change{}, nil, nil, err
			}
			if target == "" {
				return change{}, fail(ScopeViolation, false, "%s %v is not in a scope where %q may delete", m.Name, it.pk, who.id), nil, nil
			}
		}
		set.Put(m.Name, it.pk, nil)
		return change{op: op, scope: target}, nil, nil, nil
	}
	// create or update (an update of a missing record resurrects it): the
	// record's new place must be a scope the subject may write.
	scopes, err := set.Scopes(ctx, m.Name, it.rec)
	var mp *scope.MissingParentError
	switch {
	case errors.As(err, &mp):
		if sc, ok := d.missingRootScope(mp); ok {
			// The missing parent is the root itself: its key is the scope
			// the record would be in, and waiting for it is pointless when
			// the subject may not write there anyway.
			if target, err := s.allowed(who, []string{sc}, m.Name, act); err != nil || target == "" {
				return change{}, fail(ScopeViolation, false, "%s %v would be in scope %q, where %q may not %s", m.Name, it.pk, sc, who.id, act), nil, err
			}
		}
		return change{}, fail(MissingParent, true, "%s %v: its parent %s %s does not exist (yet)", m.Name, it.pk, mp.Model, scope.KeyJSON(mp.Key)), mp, nil
	case errors.Is(err, scope.ErrNoScope):
		return change{}, fail(ScopeViolation, false, "%s %v: no relation leads to a %s (null foreign key)", m.Name, it.pk, s.own.Root.Name), nil, nil
	case err != nil:
		return change{}, nil, nil, err
	}
	target, err := s.allowed(who, scopes, m.Name, act)
	if err != nil {
		return change{}, nil, nil, err
	}
	if target == "" {
		return change{}, fail(ScopeViolation, false, "%s %v would be in scope %q, where %q may not %s", m.Name, it.pk, scopes[0], who.id, act), nil, nil
	}
	c := change{op: op, scope: target, keepsRefs: cur == nil || sameRefs(m, cur, it.rec)}
	if cur != nil && curScope != target {
		// A move: readers of the old scope get a delete entry for the
		// record and for every descendant that moves with it, readers of
		// the new scope get them.
		if c.extra, err = s.move(ctx, set, it, cur, curScope, target); err != nil {
			return change{}, nil, nil, err
		}
	} else {
		set.Put(m.Name, it.pk, it.rec)
	}
	d.placed[it.key()] = target
	return c, nil, nil, nil
}

// currentScopes are the scopes of the record cur as the batch sees it
// now. When its parent is gone (the batch deleted it: a cascade delete
// whose children come after their parent), they are the scopes the record
// had when the batch began, or where the batch wrote it.
func (d *decider) currentScopes(ctx context.Context, it *item, cur schema.Record) ([]string, error) {
	scopes, err := d.set.Scopes(ctx, it.model.Name, cur)
	if err == nil {
		return scopes, nil
	}
	if !errors.Is(err, scope.ErrNoScope) && !errors.Is(err, scope.ErrMissingParent) {
		return nil, err
	}
	if sc, ok := d.placed[it.key()]; ok {
		return []string{sc}, nil
	}
	return d.began[it.key()], nil
}

// goneScopes finds where a record that is not stored was: from its last
// changelog entry, else from the deleted payload's parents.
func (d *decider) goneScopes(ctx context.Context, it *item) ([]string, *EventError, error) {
	s := d.s
	if sc, ok := d.placed[it.key()]; ok { // written by this batch, then its parent went
		return []string{sc}, nil, nil
	}
	if sc, ok := d.lastScopes[it.key()]; ok {
		return []string{sc}, nil, nil
	}
	if it.model.Name == s.own.Root.Name {
		sc, err := scope.RootKey(s.own, keyRecord(it.model, it.pk))
		return []string{sc}, nil, err
	}
	if it.rec == nil {
		return nil, fail(ScopeViolation, false, "%s %v does not exist and the payload does not say where it was", it.model.Name, it.pk), nil
	}
	scopes, err := d.set.Scopes(ctx, it.model.Name, it.rec)
	switch {
	case errors.Is(err, scope.ErrMissingParent), errors.Is(err, scope.ErrNoScope):
		return nil, fail(ScopeViolation, false, "%s %v does not exist and its scope cannot be determined", it.model.Name, it.pk), nil
	case err != nil:
		return nil, nil, err
	}
	return scopes, nil, nil
}

// classify settles the retryability of the MISSING_PARENT verdicts: an
// event may succeed later only while its parent has never existed (it may
// still arrive from another device). A parent the batch deleted, or one
// the changelog has an entry of (it existed, and is not stored: it was
// deleted), will not come back by itself, so such an event is refused for
// good; a client that keeps it would otherwise stop pulling for ever.
func (d *decider) classify(ctx context.Context, items []*item, missing map[int]*scope.MissingParentError, out verdicts) error {
	byModel := map[string][]string{}
	for _, mp := range missing {
		if !mp.Deleted && d.isPrimaryKey(mp) {
			byModel[mp.Model] = append(byModel[mp.Model], scope.KeyJSON(mp.Key))
		}
	}
	existed := map[string]bool{}
	for m, kps := range byModel {
		slices.Sort(kps)
		got, err := d.reads.LastScopes(ctx, m, slices.Compact(kps))
		if err != nil {
			return err
		}
		for kp := range got {
			existed[m+kp] = true
		}
	}
	for i, mp := range missing {
		v, ok := out[i]
		if !ok || v.err == nil || v.err.Type != MissingParent {
			continue
		}
		it := items[i]
		switch {
		case mp.Deleted:
			out[i] = refused(fail(MissingParent, false, "%s %v: its parent %s %s is deleted by this batch", it.model.Name, it.pk, mp.Model, scope.KeyJSON(mp.Key)))
		case existed[mp.Model+scope.KeyJSON(mp.Key)]:
			out[i] = refused(fail(MissingParent, false, "%s %v: its parent %s %s was deleted", it.model.Name, it.pk, mp.Model, scope.KeyJSON(mp.Key)))
		}
	}
	return nil
}

// missingRootScope is the scope a missing parent would make, when that
// parent is the root named by its primary key.
func (d *decider) missingRootScope(mp *scope.MissingParentError) (string, bool) {
	root := d.s.own.Root
	if mp.Model != root.Name || !d.isPrimaryKey(mp) {
		return "", false
	}
	sc, err := scope.RootKey(d.s.own, keyRecord(root, mp.Key))
	return sc, err == nil
}

// isPrimaryKey reports whether the missing parent is named by its primary
// key (the changelog knows records by primary key only).
func (d *decider) isPrimaryKey(mp *scope.MissingParentError) bool {
	return strings.Join(mp.Fields, ",") == strings.Join(d.s.sch.Model(mp.Model).PrimaryKey, ",")
}

// caller is the subject of one push, with the policy decisions made for it
// so far: a batch asks the same (scope, model, action) question many times.
type caller struct {
	id        string
	roles     map[string]string // scope → role, from the token
	decisions map[[3]string]bool
}

// allowed returns the first of scopes where the caller may act, or "".
func (s *Service) allowed(who *caller, scopes []string, model, act string) (string, error) {
	for _, sc := range scopes {
		key := [3]string{sc, model, act}
		ok, known := who.decisions[key]
		if !known {
			var err error
			if ok, err = s.authz.Allow(who.id, who.roles, sc, model, act); err != nil {
				return "", &policyError{err: err}
			}
			who.decisions[key] = ok
		}
		if ok {
			return sc, nil
		}
	}
	return "", nil
}
