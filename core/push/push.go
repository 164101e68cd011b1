package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/store"
)

// Error types of a PushResult.
const (
	InvalidModel            = "INVALID_MODEL"
	RecordValidationFailure = "RECORD_VALIDATION_FAILURE"
	KeyPathValidation       = "KEYPATH_VALIDATION_FAILURE"
	MissingParent           = "MISSING_PARENT"
	ScopeViolation          = "SCOPE_VIOLATION"
	UnknownOperation        = "UNKNOWN_OPERATION"
	CustomValidationFailed  = "CUSTOM_VALIDATION_FAILED"
	UnknownError            = "UNKNOWN_ERROR"
	// ValidatorUnavailable: the tenant's validator could not decide (down,
	// crashed, past its deadline, garbage answer). Retryable; nothing of the
	// event was written.
	ValidatorUnavailable = "VALIDATOR_UNAVAILABLE"
)

// Result is the outcome of one event, in prisma-idb's PushResult shape.
type Result struct {
	ID                 string      `json:"id"`
	AppliedChangelogID *string     `json:"appliedChangelogId"`
	Error              *EventError `json:"error"`
}

// EventError says why an event was not applied and whether sending it
// again later can succeed.
type EventError struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

func fail(typ string, retryable bool, format string, args ...any) *EventError {
	return &EventError{Type: typ, Message: fmt.Sprintf(format, args...), Retryable: retryable}
}

// Service applies push batches for one tenant.
type Service struct {
	sch       *schema.Schema
	own       *schema.Ownership
	store     Store
	authz     Authorizer
	validator Validator // nil: the tenant has none
	notifier  Notifier  // nil: none
	log       *slog.Logger
	now       func() time.Time
}

// New returns the push service of a tenant; validator may be nil.
func New(sch *schema.Schema, own *schema.Ownership, st Store, authz Authorizer, validator Validator, log *slog.Logger) *Service {
	return &Service{sch: sch, own: own, store: st, authz: authz, validator: validator, log: log, now: time.Now}
}

// Notifier hears of every commit push makes: heads maps each scope the
// transaction wrote to its last changelog id. It is called after the commit
// and must not block (live.Tenant pokes this process's SSE streams and
// waiting pulls; on PostgreSQL the transaction itself notifies every
// process instead, see store.Listen).
type Notifier interface {
	Notify(heads map[string]string)
}

// WithNotifier makes the service tell n about every commit; it returns s.
// Call it before the service is used.
func (s *Service) WithNotifier(n Notifier) *Service {
	s.notifier = n
	return s
}

// item is one event on its way through a batch.
type item struct {
	ev     Event
	model  *schema.Model
	rec    schema.Record // create/update: the validated record; delete: the payload if it validates
	pk     []any
	result *Result
	dupOf  int // index of an earlier event with the same id, or -1
}

// Push applies events in order and returns one result per event. The
// error is non-nil only when storage is unavailable (store.ErrUnavailable),
// the Authorizer fails or the context ends; then no results are returned,
// and events already committed one by one (if any) are reported as applied
// with their original changelog ids when sent again.
func (s *Service) Push(ctx context.Context, subject string, roles map[string]string, events []Event) ([]Result, error) {
	who := &caller{id: subject, roles: roles, decisions: map[[3]string]bool{}}
	items := make([]*item, len(events))
	seen := map[string]int{}
	var todo []int
	for i, ev := range events {
		it := &item{ev: ev, result: &Result{ID: ev.ID}, dupOf: -1}
		items[i] = it
		if first, ok := seen[ev.ID]; ok {
			it.dupOf = first
			continue
		}
		seen[ev.ID] = i
		if it.result.Error = s.check(it); it.result.Error == nil {
			todo = append(todo, i)
		}
	}
	if len(todo) > 0 && s.validator != nil {
		var err error
		if todo, err = s.validate(ctx, who, items, todo); err != nil {
			return nil, err
		}
	}
	if len(todo) > 0 {
		err := s.apply(ctx, who, items, todo)
		if err != nil && !fatal(ctx, err) {
			s.log.Debug("batch transaction failed; applying events one by one", "events", len(todo), "err", err)
			err = s.applyEach(ctx, who, items, todo)
		}
		if err != nil {
			return nil, err
		}
	}
	out := make([]Result, len(items))
	for i, it := range items {
		if it.dupOf >= 0 {
			r := *items[it.dupOf].result
			out[i] = r
			continue
		}
		out[i] = *it.result
	}
	return out, nil
}

// check does the stateless validation of one event.
func (s *Service) check(it *item) *EventError {
	m := s.sch.Model(it.ev.EntityType)
	if m == nil || !s.own.IsSynced(m.Name) {
		return fail(InvalidModel, false, "no synced model %q", it.ev.EntityType)
	}
	it.model = m
	switch changelog.Operation(it.ev.Operation) {
	case changelog.Create, changelog.Update:
		rec, err := it.ev.validate(m)
		if err != nil {
			return fail(RecordValidationFailure, false, "validation failed for model %s: %v", m.Name, err)
		}
		it.rec = rec
		it.pk = m.Key(rec)
	case changelog.Delete:
		// The client sends the whole record; only its key is needed, and
		// the rest helps to find the scope of a record that is gone.
		if rec, err := it.ev.validate(m); err == nil {
			it.rec = rec
			it.pk = m.Key(rec)
		} else {
			pk, kerr := keyOf(m, it.ev.Payload)
			if kerr != nil {
				return fail(KeyPathValidation, false, "model %s: %v", m.Name, kerr)
			}
			it.pk = pk
		}
	default:
		return fail(UnknownOperation, false, "unknown operation %q (want create, update or delete)", it.ev.Operation)
	}
	for i, v := range it.pk {
		if sv, ok := v.(string); ok && sv == "" {
			return fail(KeyPathValidation, false, "model %s: key field %q must not be empty", m.Name, m.PrimaryKey[i])
		}
	}
	return nil
}

// applyEach is the fallback: one transaction per event.
func (s *Service) applyEach(ctx context.Context, who *caller, items []*item, todo []int) error {
	for _, i := range todo {
		err := s.apply(ctx, who, items, []int{i})
		if errors.Is(err, store.ErrDuplicateEvent) {
			err = s.apply(ctx, who, items, []int{i}) // now it finds the committed entry
		}
		var ce *store.ConstraintError
		switch {
		case err == nil:
		case fatal(ctx, err):
			return err
		case errors.As(err, &ce) && ce.Kind == "unique":
			items[i].result.Error = fail(RecordValidationFailure, false, "model %s: %v", items[i].model.Name, ce)
		case errors.As(err, &ce) && items[i].ev.Operation == string(changelog.Delete):
			items[i].result.Error = fail(RecordValidationFailure, true, "model %s: the record is still referenced by other records: %s", items[i].model.Name, ce.Detail)
		case errors.As(err, &ce):
			items[i].result.Error = fail(MissingParent, true, "model %s: a parent record does not exist (anymore): %s", items[i].model.Name, ce.Detail)
		default:
			s.log.Error("push event failed", "event", items[i].ev.ID, "model", items[i].model.Name, "err", err)
			items[i].result.Error = fail(UnknownError, true, "an unexpected error occurred")
		}
	}
	return nil
}

// policyError is a failure of the Authorizer (not a denial).
type policyError struct{ err error }

func (e *policyError) Error() string { return "policy: " + e.err.Error() }
func (e *policyError) Unwrap() error { return e.err }

// fatal reports whether err fails the whole request rather than one
// transaction: storage is unavailable, the Authorizer fails (an event it
// cannot decide must never be taken as allowed, and retrying event by
// event would only repeat the failure) or the request has ended.
func fatal(ctx context.Context, err error) bool {
	var pe *policyError
	return errors.Is(err, store.ErrUnavailable) || errors.As(err, &pe) || ctx.Err() != nil
}

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

// apply runs the events todo (indexes into items) in one transaction.
// Per-event rejections are written into the items' results; an error means
// the transaction failed and nothing was written.
func (s *Service) apply(ctx context.Context, who *caller, items []*item, todo []int) (err error) {
	for _, i := range todo { // forget what a failed earlier attempt reported
		*items[i].result = Result{ID: items[i].ev.ID}
	}
	tx, err := s.store.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	ids := make([]string, len(todo))
	for j, i := range todo {
		ids[j] = items[i].ev.ID
	}
	applied, err := tx.AppliedEvents(ctx, ids)
	if err != nil {
		return err
	}
	var live []int
	for _, i := range todo {
		if id, ok := applied[items[i].ev.ID]; ok {
			items[i].result.AppliedChangelogID = &id // idempotent replay: nothing is written
			continue
		}
		live = append(live, i)
	}
	set := scope.NewSet(s.sch, s.own, tx)
	lastScopes, err := s.load(ctx, tx, set, items, live)
	if err != nil {
		return err
	}
	var changes []change
	for _, i := range live {
		c, evErr, err := s.decide(ctx, who, set, lastScopes, items[i])
		if err != nil {
			return err
		}
		if evErr != nil {
			items[i].result.Error = evErr
			continue
		}
		c.idx = i
		changes = append(changes, c)
	}
	if len(changes) == 0 {
		return tx.Commit()
	}
	heads, err := s.write(ctx, tx, items, changes)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if s.notifier != nil {
		s.notifier.Notify(heads)
	}
	return nil
}

// load fetches in bulk what deciding the batch needs: the records the
// events touch, the ancestors of those and of the payloads, and the last
// known scope of records that deletes name.
func (s *Service) load(ctx context.Context, tx Reads, set *scope.Set, items []*item, live []int) (map[string]string, error) {
	byModel := map[string][][]any{}
	payloads := map[string][]schema.Record{}
	var order []string
	for _, i := range live {
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
		refs = append(refs, scope.Ref{Model: m, Fields: s.sch.Model(m).PrimaryKey, Keys: byModel[m]})
	}
	if _, err := set.Load(ctx, refs); err != nil {
		return nil, err
	}
	for _, m := range order {
		if err := set.Prefetch(ctx, m, payloads[m]); err != nil {
			return nil, err
		}
	}
	// Deletes of records that are not stored find their scope in the changelog.
	missing := map[string][]string{}
	for _, i := range live {
		it := items[i]
		if it.ev.Operation != string(changelog.Delete) {
			continue
		}
		if r, err := set.Get(ctx, it.model.Name, it.pk); err != nil {
			return nil, err
		} else if r == nil {
			missing[it.model.Name] = append(missing[it.model.Name], scope.KeyJSON(it.pk))
		}
	}
	last := map[string]string{}
	for m, kps := range missing {
		got, err := tx.LastScopes(ctx, m, kps)
		if err != nil {
			return nil, err
		}
		for kp, sc := range got {
			last[m+kp] = sc
		}
	}
	return last, nil
}

// decide validates one event against the batch's state so far and, when
// it is accepted, applies it to the set.
func (s *Service) decide(ctx context.Context, who *caller, set *scope.Set, lastScopes map[string]string, it *item) (change, *EventError, error) {
	m := it.model
	op := changelog.Operation(it.ev.Operation)
	act := string(op)
	cur, err := set.Get(ctx, m.Name, it.pk)
	if err != nil {
		return change{}, nil, err
	}
	// The scope the record is in now must allow the action.
	var curScope string
	if cur != nil {
		scopes, err := set.Scopes(ctx, m.Name, cur)
		if err != nil && !errors.Is(err, scope.ErrNoScope) && !errors.Is(err, scope.ErrMissingParent) {
			return change{}, nil, err
		}
		if curScope, err = s.allowed(who, scopes, m.Name, act); err != nil {
			return change{}, nil, err
		}
		if curScope == "" {
			return change{}, fail(ScopeViolation, false, "%s %v belongs to a scope where %q may not %s", m.Name, it.pk, who.id, act), nil
		}
	}
	if op == changelog.Delete {
		target := curScope
		if cur == nil {
			scopes, evErr, err := s.goneScopes(ctx, set, lastScopes, it)
			if err != nil || evErr != nil {
				return change{}, evErr, err
			}
			if target, err = s.allowed(who, scopes, m.Name, act); err != nil {
				return change{}, nil, err
			}
			if target == "" {
				return change{}, fail(ScopeViolation, false, "%s %v is not in a scope where %q may delete", m.Name, it.pk, who.id), nil
			}
		}
		set.Put(m.Name, it.pk, nil)
		return change{op: op, scope: target}, nil, nil
	}
	// create or update (an update of a missing record resurrects it): the
	// record's new place must be a scope the subject may write.
	scopes, err := set.Scopes(ctx, m.Name, it.rec)
	switch {
	case errors.Is(err, scope.ErrMissingParent):
		return change{}, fail(MissingParent, true, "%s %v: its parent record does not exist (yet)", m.Name, it.pk), nil
	case errors.Is(err, scope.ErrNoScope):
		return change{}, fail(ScopeViolation, false, "%s %v: no relation leads to a %s (null foreign key)", m.Name, it.pk, s.own.Root.Name), nil
	case err != nil:
		return change{}, nil, err
	}
	target, err := s.allowed(who, scopes, m.Name, act)
	if err != nil {
		return change{}, nil, err
	}
	if target == "" {
		return change{}, fail(ScopeViolation, false, "%s %v would be in scope %q, where %q may not %s", m.Name, it.pk, scopes[0], who.id, act), nil
	}
	c := change{op: op, scope: target, keepsRefs: cur == nil || sameRefs(m, cur, it.rec)}
	if cur != nil && curScope != target {
		// A move: readers of the old scope get a delete entry for the
		// record and for every descendant that moves with it, readers of
		// the new scope get them.
		if c.extra, err = s.move(ctx, set, it, cur, curScope, target); err != nil {
			return change{}, nil, err
		}
	} else {
		set.Put(m.Name, it.pk, it.rec)
	}
	return c, nil, nil
}

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

// goneScopes finds where a record that is not stored was: from its last
// changelog entry, else from the deleted payload's parents.
func (s *Service) goneScopes(ctx context.Context, set *scope.Set, lastScopes map[string]string, it *item) ([]string, *EventError, error) {
	if sc, ok := lastScopes[it.model.Name+scope.KeyJSON(it.pk)]; ok {
		return []string{sc}, nil, nil
	}
	if it.model.Name == s.own.Root.Name {
		sc, err := scope.RootKey(s.own, keyRecord(it.model, it.pk))
		return []string{sc}, nil, err
	}
	if it.rec == nil {
		return nil, fail(ScopeViolation, false, "%s %v does not exist and the payload does not say where it was", it.model.Name, it.pk), nil
	}
	scopes, err := set.Scopes(ctx, it.model.Name, it.rec)
	switch {
	case errors.Is(err, scope.ErrMissingParent), errors.Is(err, scope.ErrNoScope):
		return nil, fail(ScopeViolation, false, "%s %v does not exist and its scope cannot be determined", it.model.Name, it.pk), nil
	case err != nil:
		return nil, nil, err
	}
	return scopes, nil, nil
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

// write allocates changelog ids under the scope locks and writes the
// accepted changes: consecutive upserts of the batch become one multi-row
// upsert per model (parents first), consecutive deletes one delete per
// model (children first).
func (s *Service) write(ctx context.Context, tx Tx, items []*item, changes []change) (map[string]string, error) {
	var scopes []string
	for _, c := range changes {
		scopes = append(scopes, c.scope)
		for _, x := range c.extra {
			scopes = append(scopes, x.scope)
		}
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	heads, err := tx.LockScopes(ctx, scopes)
	if err != nil {
		return nil, err
	}
	// Every id of the transaction is above every locked head: increasing
	// per scope in commit order, and a moved record's entry in its new
	// scope sorts after its entries in the old one.
	last := ""
	for _, h := range heads {
		last = max(last, h)
	}
	now := s.now().UTC()
	var entries []changelog.Entry
	own := make([]int, len(changes)) // index of each change's own entry
	add := func(m *schema.Model, pk []any, op changelog.Operation, sc, eventID string) error {
		id, err := changelog.Next(last, now)
		if err != nil {
			return err
		}
		last, heads[sc] = id, id
		entries = append(entries, changelog.Entry{ID: id, Model: m.Name, KeyPath: []byte(scope.KeyJSON(pk)),
			Operation: op, ScopeKey: sc, OutboxEventID: eventID, CreatedAt: now})
		return nil
	}
	for j, c := range changes {
		it := items[c.idx]
		for _, x := range c.extra {
			if !x.after {
				if err := add(x.model, x.pk, x.op, x.scope, x.eventID); err != nil {
					return nil, err
				}
			}
		}
		if err := add(it.model, it.pk, c.op, c.scope, it.ev.ID); err != nil {
			return nil, err
		}
		own[j] = len(entries) - 1
		for _, x := range c.extra {
			if x.after {
				if err := add(x.model, x.pk, x.op, x.scope, x.eventID); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := tx.Apply(ctx, s.writes(items, changes), entries, heads); err != nil {
		return nil, err
	}
	for j, c := range changes {
		id := entries[own[j]].ID
		items[c.idx].result.AppliedChangelogID = &id
	}
	return heads, nil
}

// writes turns the accepted changes into the store's writes: the upserts
// (one multi-row upsert per model, parents first), then the deletes (one
// per model, children first), then again for what could not join them.
// Running upserts before the deletes that came earlier in the batch is
// what the batch would have done as long as no upsert names a record
// deleted before it or changes a foreign key (which could move a record
// out of a deleted parent's reach, or free a parent a restricting
// relation holds); such an upsert writes what came before it first.
func (s *Service) writes(items []*item, changes []change) []store.Write {
	synced := s.own.Synced()
	var out []store.Write
	upserts := map[string]map[string]schema.Record{}
	deletes := map[string]map[string][]any{}
	pendingDeletes := false
	flush := func() {
		for _, m := range synced { // parents first
			if recs := upserts[m.Name]; len(recs) > 0 {
				out = append(out, store.Write{Model: m.Name, Upsert: slices.Collect(maps.Values(recs))})
			}
		}
		for k := len(synced) - 1; k >= 0; k-- { // children first
			m := synced[k]
			if keys := deletes[m.Name]; len(keys) > 0 {
				out = append(out, store.Write{Model: m.Name, Delete: slices.Collect(maps.Values(keys))})
			}
		}
		clear(upserts)
		clear(deletes)
		pendingDeletes = false
	}
	for _, c := range changes {
		it := items[c.idx]
		key := scope.KeyJSON(it.pk)
		if c.op == changelog.Delete {
			if deletes[it.model.Name] == nil {
				deletes[it.model.Name] = map[string][]any{}
			}
			deletes[it.model.Name][key] = it.pk
			pendingDeletes = true
			continue
		}
		if _, deleted := deletes[it.model.Name][key]; pendingDeletes && (deleted || !c.keepsRefs) {
			flush()
		}
		if upserts[it.model.Name] == nil {
			upserts[it.model.Name] = map[string]schema.Record{}
		}
		upserts[it.model.Name][key] = it.rec
	}
	flush()
	return out
}

// sameRefs reports whether b has the foreign key values of a for every
// relation of m.
func sameRefs(m *schema.Model, a, b schema.Record) bool {
	for _, rel := range m.Relations {
		for _, f := range rel.Fields {
			if scope.KeyJSON([]any{a[f]}) != scope.KeyJSON([]any{b[f]}) {
				return false
			}
		}
	}
	return true
}
