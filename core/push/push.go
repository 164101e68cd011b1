package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/tracing"
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
	roots     *roots    // nil: no rootFromToken
	history   bool      // keep the full history apart (WithHistory)
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

// Notify tells the service's Notifier (if any) of a commit made outside
// a push, such as an erasure (store.Tenant.EraseScope).
func (s *Service) Notify(heads map[string]string) {
	if s.notifier != nil && len(heads) > 0 {
		s.notifier.Notify(heads)
	}
}

// WithNotifier makes the service tell n about every commit; it returns s.
// Call it before the service is used.
func (s *Service) WithNotifier(n Notifier) *Service {
	s.notifier = n
	return s
}

// WithHistory makes the service record, with every batch it applies,
// each entry it allocated (superseded ones included) with the subject and
// the record written, in the tenant's full history apart from the
// compacted changelog (manifest changelog: history); it returns s. Call
// it before the service is used.
func (s *Service) WithHistory(on bool) *Service {
	s.history = on
	return s
}

// item is one event on its way through a batch.
type item struct {
	ev    Event
	model *schema.Model
	rec   schema.Record // create/update: the validated record; delete: the payload if it validates
	pk    []any
	dupOf int    // index of an earlier event with the same id, or -1
	k     string // key(), once computed
}

// key names the record the event is about, unique within the batch.
func (it *item) key() string {
	if it.k == "" {
		var buf [96]byte
		it.k = string(scope.AppendKeyJSON(append(buf[:0], it.model.Name...), it.pk))
	}
	return it.k
}

// verdict is what became of one event: applied under a changelog id, or
// refused with an error.
type verdict struct {
	changelogID string
	err         *EventError
}

func applied(id string) verdict     { return verdict{changelogID: id} }
func refused(e *EventError) verdict { return verdict{err: e} }

// verdicts holds the verdicts of a stage, by item index.
type verdicts map[int]verdict

// Push applies a batch and returns one result per event, in the order
// sent. The stages run in turn, each on the events the previous ones let
// through, and each returns its verdicts: check (the event alone), the
// tenant's validator (on committed state), apply (one transaction:
// idempotency, decision, write), and apply again event by event when the
// batch's transaction fails. docs/architecture.md walks through them.
//
// The error is non-nil only when storage is unavailable
// (syncdata.ErrUnavailable), the Authorizer fails or the context ends; then
// no results are returned, and events already committed one by one (if
// any) are reported as applied with their original changelog ids when
// sent again.
//
// With tracing (see package tracing), each stage is a span below the
// span in ctx: push.check, push.validate (push.policy and the validator's
// call), push.transaction per run of apply (push.policy, push.write,
// push.commit), and push.apply_each around the fallback.
func (s *Service) Push(ctx context.Context, subject string, roles map[string]string, events []Event) ([]Result, error) {
	who := &caller{id: subject, roles: roles, decisions: map[[3]string]bool{}}
	_, span := tracing.Start(ctx, "push.check")
	items, todo, out := s.checkAll(events)
	tracing.Int(span, "syncplane.events", len(events))
	tracing.Int(span, "syncplane.events.passed", len(todo))
	span.End()
	if len(todo) > 0 && s.validator != nil {
		vctx, span := tracing.Start(ctx, "push.validate")
		allowed, vs, err := s.validate(vctx, who, items, todo)
		tracing.Int(span, "syncplane.events", len(todo))
		tracing.Int(span, "syncplane.events.allowed", len(allowed))
		tracing.End(span, err)
		if err != nil {
			return nil, err
		}
		todo = allowed
		merge(out, vs)
	}
	if len(todo) > 0 {
		vs, err := s.applyRetrying(ctx, who, items, todo)
		if err != nil && !fatal(ctx, err) {
			s.log.Debug("batch transaction failed; applying events one by one", "events", len(todo), "err", err)
			ectx, span := tracing.Start(ctx, "push.apply_each")
			tracing.Int(span, "syncplane.events", len(todo))
			// One span for the lot: none per event.
			vs, err = s.applyEach(tracing.Without(ectx), who, items, todo)
			tracing.End(span, err)
		}
		if err != nil {
			return nil, err
		}
		merge(out, vs)
	}
	return results(items, out), nil
}

func merge(dst, src verdicts) {
	for i, v := range src {
		dst[i] = v
	}
}

// results turns the verdicts into the response: a repeated event id gets
// the answer of its first occurrence.
func results(items []*item, vs verdicts) []Result {
	out := make([]Result, len(items))
	for i, it := range items {
		src := i
		if it.dupOf >= 0 {
			src = it.dupOf
		}
		out[i] = Result{ID: it.ev.ID}
		v, ok := vs[src]
		switch {
		case !ok: // every stage answers for the events it is given; this is a bug
			out[i].Error = fail(UnknownError, true, "an unexpected error occurred")
		case v.err != nil:
			out[i].Error = v.err
		default:
			id := v.changelogID
			out[i].AppliedChangelogID = &id
		}
	}
	return out
}

// checkAll runs check on every event and returns the items, the indexes
// of those that go on (first occurrences that passed), and the verdicts
// on those that did not.
func (s *Service) checkAll(events []Event) ([]*item, []int, verdicts) {
	items := make([]*item, len(events))
	out := verdicts{}
	seen := make(map[string]int, len(events))
	var todo []int
	for i, ev := range events {
		it := &item{ev: ev, dupOf: -1}
		items[i] = it
		if first, ok := seen[ev.ID]; ok {
			it.dupOf = first
			continue
		}
		seen[ev.ID] = i
		if err := s.check(it); err != nil {
			out[i] = refused(err)
			continue
		}
		todo = append(todo, i)
	}
	return items, todo, out
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
			typ := RecordValidationFailure
			if ve := (*schema.ValidationError)(nil); errors.As(err, &ve) && slices.Contains(m.PrimaryKey, ve.Field) {
				typ = KeyPathValidation // the record's key itself is unusable
			}
			return fail(typ, false, "validation failed for model %s: %v", m.Name, err)
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

// apply runs the events todo (indexes into items) in one transaction and
// returns their verdicts. An error means the transaction failed and
// nothing was written.
func (s *Service) apply(ctx context.Context, who *caller, items []*item, todo []int) (_ verdicts, err error) {
	ctx, span := tracing.Start(ctx, "push.transaction")
	tracing.Int(span, "syncplane.events", len(todo))
	defer func() { tracing.End(span, err) }()
	tx, err := s.store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// The ledger lookup travels with the batch's records and their
	// parents (loaded for every event: a replayed one's are not used).
	ledger := tx.AppliedEventsLater(ctx, who.id, eventIDs(items, todo))
	d := s.decider(who, tx)
	if err := d.prefetch(ctx, items, todo); err != nil {
		return nil, err
	}
	done, err := ledger()
	if err != nil {
		return nil, err
	}
	out, live := replayed(items, todo, done)
	changes, decided, err := d.decideAllTraced(ctx, items, live)
	if err != nil {
		return nil, err
	}
	merge(out, decided)
	tracing.Int(span, "syncplane.events.replayed", len(todo)-len(live))
	tracing.Int(span, "syncplane.changes", len(changes))
	if len(changes) == 0 {
		return out, commit(ctx, tx)
	}
	wctx, wspan := tracing.Start(ctx, "push.write")
	ids, heads, err := s.write(wctx, tx, who.id, items, changes)
	tracing.End(wspan, err)
	if err != nil {
		return nil, err
	}
	if err := commit(ctx, tx); err != nil {
		return nil, err
	}
	if s.notifier != nil {
		s.notifier.Notify(heads)
	}
	for j, c := range changes {
		out[c.idx] = applied(ids[j])
	}
	return out, nil
}

// commit commits tx, in the span push.commit.
func commit(ctx context.Context, tx Tx) error {
	_, span := tracing.Start(ctx, "push.commit")
	err := tx.Commit()
	tracing.End(span, err)
	return err
}

// applyRetrying is apply, run once more when its transaction lost its
// connection or a serialization conflict (syncdata.ErrTransient): a pooled
// connection that a database restart or failover broke is replaced, and
// the request succeeds instead of failing with 503. Nothing of the lost
// transaction was committed (and if its COMMIT went through before the
// connection broke, the second run finds its events applied).
func (s *Service) applyRetrying(ctx context.Context, who *caller, items []*item, todo []int) (verdicts, error) {
	vs, err := s.apply(ctx, who, items, todo)
	if errors.Is(err, syncdata.ErrTransient) && ctx.Err() == nil {
		s.log.Info("storage connection lost; running the push transaction once more", "err", err)
		vs, err = s.apply(ctx, who, items, todo)
	}
	return vs, err
}

// replays answers the events of todo that subject applied before with
// their original changelog ids (nothing is written for them) and returns
// the others. The same id from another subject is another event.
func replays(ctx context.Context, r Reads, subject string, items []*item, todo []int) (verdicts, []int, error) {
	done, err := r.AppliedEvents(ctx, subject, eventIDs(items, todo))
	if err != nil {
		return nil, nil, err
	}
	out, live := replayed(items, todo, done)
	return out, live, nil
}

func eventIDs(items []*item, todo []int) []string {
	ids := make([]string, len(todo))
	for j, i := range todo {
		ids[j] = items[i].ev.ID
	}
	return ids
}

// replayed splits todo into the events found in done (event id →
// changelog id), answered with their ids, and the others.
func replayed(items []*item, todo []int, done map[string]string) (verdicts, []int) {
	out := verdicts{}
	var live []int
	for _, i := range todo {
		if id, ok := done[items[i].ev.ID]; ok {
			out[i] = applied(id)
			continue
		}
		live = append(live, i)
	}
	return out, live
}

// applyEach is the fallback: one transaction per event. Events whose
// parent is not there yet go round again after the others, as in a batch
// (see decider.decideAll), until a round makes no progress.
func (s *Service) applyEach(ctx context.Context, who *caller, items []*item, todo []int) (verdicts, error) {
	out := verdicts{}
	for pending := todo; len(pending) > 0; {
		var again []int
		for _, i := range pending {
			vs, err := s.applyRetrying(ctx, who, items, []int{i})
			if errors.Is(err, syncdata.ErrDuplicateEvent) {
				vs, err = s.apply(ctx, who, items, []int{i}) // now it finds the committed entry
			}
			switch {
			case err == nil:
				merge(out, vs)
				if e := vs[i].err; e != nil && e.Type == MissingParent && e.Retryable {
					again = append(again, i)
				}
			case fatal(ctx, err):
				return nil, err
			default:
				out[i] = refused(s.eventFailure(items[i], err))
			}
		}
		if len(again) == len(pending) {
			break
		}
		pending = again
	}
	return out, nil
}

// eventFailure is the verdict on an event whose own transaction failed.
func (s *Service) eventFailure(it *item, err error) *EventError {
	var ce *syncdata.ConstraintError
	switch {
	case errors.As(err, &ce) && ce.Kind == "unique":
		return fail(RecordValidationFailure, false, "model %s: %v", it.model.Name, ce)
	case errors.As(err, &ce) && it.ev.Operation == string(changelog.Delete):
		return fail(RecordValidationFailure, true, "model %s: the record is still referenced by other records: %s", it.model.Name, ce.Detail)
	case errors.As(err, &ce):
		return fail(MissingParent, true, "model %s: a parent record does not exist (anymore): %s", it.model.Name, ce.Detail)
	}
	s.log.Error("push event failed", "event", it.ev.ID, "model", it.model.Name, "err", err)
	return fail(UnknownError, true, "an unexpected error occurred")
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
	return errors.Is(err, syncdata.ErrUnavailable) || errors.As(err, &pe) || ctx.Err() != nil
}
