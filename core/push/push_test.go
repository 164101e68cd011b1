package push_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/testkit"
)

const ts = "2026-11-25T10:00:00.000Z"

func board(id, userID string) map[string]any { return testkit.Board(id, userID, "Board "+id) }

func todo(id, boardID string) map[string]any { return testkit.Todo(id, boardID, "Todo "+id) }

func event(t testing.TB, id, model, op string, payload map[string]any) push.Event {
	return push.Event{ID: id, EntityType: model, Operation: op, Payload: mustJSON(t, payload)}
}

// fixture is a tenant with users u1..u3, board b1 of u1 and todos t0, t1
// on b1, plus a push service over it.
type fixture struct {
	db   *memDB
	st   *fakeStore
	svc  *push.Service
	logs *bytes.Buffer
}

func newFixture(t *testing.T, authz push.Authorizer) *fixture {
	t.Helper()
	sch, own := testkit.Kanban(t)
	db := newMemDB(t, sch)
	for _, u := range []string{"u1", "u2", "u3"} {
		db.seed("User", testkit.User(u))
	}
	db.seed("Board", board("b1", "u1"))
	db.seed("Todo", todo("t0", "b1"))
	db.seed("Todo", todo("t1", "b1"))
	f := &fixture{db: db, st: db.store(), logs: &bytes.Buffer{}}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.svc = push.New(sch, own, f.st, authz, nil, log)
	t.Cleanup(func() {
		if db.open != 0 {
			t.Errorf("%d transaction(s) neither committed nor rolled back", db.open)
		}
	})
	return f
}

// outcome is a Result without its random changelog id.
type outcome struct {
	ID        string
	Applied   bool
	Type      string
	Retryable bool
}

func applied(id string) outcome { return outcome{ID: id, Applied: true} }

func outcomes(t *testing.T, rs []push.Result) []outcome {
	t.Helper()
	out := make([]outcome, len(rs))
	for i, r := range rs {
		if (r.AppliedChangelogID == nil) == (r.Error == nil) {
			t.Errorf("result %d (%s): want exactly one of appliedChangelogId and error, got %v and %+v", i, r.ID, r.AppliedChangelogID, r.Error)
		}
		out[i] = outcome{ID: r.ID, Applied: r.AppliedChangelogID != nil}
		if r.Error != nil {
			out[i].Type, out[i].Retryable = r.Error.Type, r.Error.Retryable
		}
	}
	return out
}

// failUpsertOf makes every Upsert of model that holds the record with the
// given id fail with err.
func failUpsertOf(model, id string, err error) func(int, *fakeTx) {
	return func(_ int, tx *fakeTx) {
		next := tx.UpsertFunc
		tx.UpsertFunc = func(ctx context.Context, m string, recs []schema.Record) error {
			if m == model && slices.ContainsFunc(recs, func(r schema.Record) bool { return r["id"] == id }) {
				return err
			}
			return next(ctx, m, recs)
		}
	}
}

// TestPushFallbackOnUnexpectedError: a batch transaction that fails for an
// unexpected reason is retried one event per transaction; the event whose
// own transaction fails gets UNKNOWN_ERROR without internals, the others
// apply, and a later event that needed it waits for its parent.
func TestPushFallbackOnUnexpectedError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, selfOnly)
	const internal = `pq: relation "tenant_7f3a.board" is corrupt at page 1234`
	f.db.wrap = failUpsertOf("Board", "b3", errors.New(internal))
	events := []push.Event{
		event(t, "evt-1", "Board", "create", board("b2", "u1")),
		event(t, "evt-2", "Board", "create", board("b3", "u1")),
		event(t, "evt-3", "Todo", "create", todo("t2", "b2")),
		event(t, "evt-4", "Todo", "create", todo("t3", "b3")),
		event(t, "evt-5", "Board", "update", board("b1", "u1")),
	}
	res, err := f.svc.Push(context.Background(), "u1", nil, events)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	want := []outcome{
		applied("evt-1"),
		{ID: "evt-2", Type: push.UnknownError, Retryable: true},
		applied("evt-3"),
		{ID: "evt-4", Type: push.MissingParent, Retryable: true},
		applied("evt-5"),
	}
	if diff := cmp.Diff(want, outcomes(t, res)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if msg := res[1].Error.Message; msg != "an unexpected error occurred" || strings.Contains(msg, "pq") {
		t.Errorf("UNKNOWN_ERROR message = %q, want a message without internals", msg)
	}
	// The batch, one per event, and evt-4 once more: an event whose parent
	// is missing waits for the others, as in a batch.
	if got, want := f.db.begins, 1+len(events)+1; got != want {
		t.Errorf("Begin called %d times, want %d (the batch, then one per event, then evt-4 again)", got, want)
	}
	for _, c := range []struct {
		model, id string
		want      bool
	}{{"Board", "b2", true}, {"Board", "b3", false}, {"Todo", "t2", true}, {"Todo", "t3", false}} {
		if got := f.db.has(c.model, c.id); got != c.want {
			t.Errorf("%s %s stored = %t, want %t", c.model, c.id, got, c.want)
		}
	}
	for i, r := range res {
		entries := f.db.entriesOf(r.ID)
		switch {
		case r.AppliedChangelogID == nil && len(entries) != 0:
			t.Errorf("%s was not applied but has changelog entries %v", r.ID, entries)
		case r.AppliedChangelogID != nil && (len(entries) != 1 || entries[0].ID != *r.AppliedChangelogID):
			t.Errorf("result %d: appliedChangelogId %s, changelog entries %v", i, *r.AppliedChangelogID, entries)
		}
	}
	// The internal error is handled once: logged, not returned.
	if n := strings.Count(f.logs.String(), "push event failed"); n != 1 || !strings.Contains(f.logs.String(), "is corrupt at page") {
		t.Errorf("want the internal error logged once, logs:\n%s", f.logs)
	}
}

// unavailableBatch touches every Tx method: loads, two upserts, a delete
// of a stored record and a delete of a record that is gone (LastScopes).
func unavailableBatch(t *testing.T) []push.Event {
	return []push.Event{
		event(t, "evt-1", "Board", "create", board("b2", "u1")),
		event(t, "evt-2", "Todo", "update", todo("t1", "b1")),
		event(t, "evt-3", "Todo", "delete", todo("t0", "b1")),
		event(t, "evt-4", "Todo", "delete", todo("t9", "b1")),
	}
}

// failing makes the named Tx method of every transaction return err.
func failing(method string, err error) func(int, *fakeTx) {
	return func(_ int, tx *fakeTx) {
		switch method {
		case "Load":
			tx.LoadFunc = func(context.Context, string, []string, [][]any) ([]schema.Record, error) { return nil, err }
		case "AppliedEvents":
			tx.AppliedEventsFunc = func(context.Context, string, []string) (map[string]string, error) { return nil, err }
		case "LastScopes":
			tx.LastScopesFunc = func(context.Context, string, []string) (map[string]string, error) { return nil, err }
		case "LockScopes":
			tx.LockScopesFunc = func(context.Context, []string) (map[string]string, error) { return nil, err }
		case "Upsert":
			tx.UpsertFunc = func(context.Context, string, []schema.Record) error { return err }
		case "Delete":
			tx.DeleteFunc = func(context.Context, string, [][]any) error { return err }
		case "AppendChangelog":
			tx.AppendChangelogFunc = func(context.Context, []changelog.Entry, map[string]string, syncdata.Applied) error { return err }
		case "Commit":
			// A failed commit leaves the transaction to the caller's Rollback.
			tx.CommitFunc = func() error { return err }
		default:
			panic("no Tx method " + method)
		}
	}
}

// TestPushStorageUnavailable: syncdata.ErrUnavailable from any call fails the
// request with no results and nothing written, without the per-event
// fallback.
func TestPushStorageUnavailable(t *testing.T) {
	t.Parallel()
	unavailable := fmt.Errorf("%w: dial tcp 10.0.0.7:5432: connection refused", syncdata.ErrUnavailable)
	for _, method := range []string{"Begin", "Load", "AppliedEvents", "LastScopes", "LockScopes", "Upsert", "Delete", "AppendChangelog", "Commit"} {
		t.Run("method="+method, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, selfOnly)
			if method == "Begin" {
				f.st.BeginFunc = func(context.Context) (push.Tx, error) { f.db.begins++; return nil, unavailable }
			} else {
				f.db.wrap = failing(method, unavailable)
			}
			before := f.db.state()
			res, err := f.svc.Push(context.Background(), "u1", nil, unavailableBatch(t))
			if !errors.Is(err, syncdata.ErrUnavailable) {
				t.Fatalf("Push error = %v, want one wrapping syncdata.ErrUnavailable", err)
			}
			if res != nil {
				t.Errorf("Push returned results %+v along with the error", res)
			}
			if f.db.begins != 1 {
				t.Errorf("Begin called %d times, want 1 (no per-event fallback)", f.db.begins)
			}
			if diff := cmp.Diff(before, f.db.state()); diff != "" {
				t.Errorf("storage changed (-before +after):\n%s", diff)
			}
		})
	}
}

// TestPushUnavailableDuringFallback: when storage goes away while events
// are applied one by one, the request fails; the events committed before
// are not lost, and sending the batch again returns their original
// changelog ids.
func TestPushUnavailableDuringFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, selfOnly)
	f.db.wrap = failUpsertOf("Board", "b3", errors.New("deadlock detected"))
	begin := f.st.BeginFunc
	f.st.BeginFunc = func(ctx context.Context) (push.Tx, error) {
		if f.db.begins == 2 { // the batch and evt-1's own transaction are done
			f.db.begins++
			return nil, fmt.Errorf("%w: too many connections", syncdata.ErrUnavailable)
		}
		return begin(ctx)
	}
	events := []push.Event{
		event(t, "evt-1", "Board", "create", board("b2", "u1")),
		event(t, "evt-2", "Board", "create", board("b3", "u1")),
	}
	res, err := f.svc.Push(context.Background(), "u1", nil, events)
	if !errors.Is(err, syncdata.ErrUnavailable) || res != nil {
		t.Fatalf("Push = %+v, %v; want no results and syncdata.ErrUnavailable", res, err)
	}
	first := f.db.entriesOf("evt-1")
	if len(first) != 1 || !f.db.has("Board", "b2") {
		t.Fatalf("evt-1 was committed in its own transaction; entries %v", first)
	}

	f.db.wrap, f.st.BeginFunc = nil, begin
	res, err = f.svc.Push(context.Background(), "u1", nil, events)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]outcome{applied("evt-1"), applied("evt-2")}, outcomes(t, res)); diff != "" {
		t.Fatalf("retry results (-want +got):\n%s", diff)
	}
	if *res[0].AppliedChangelogID != first[0].ID || len(f.db.entriesOf("evt-1")) != 1 {
		t.Errorf("retry of evt-1 = %s, want its original changelog id %s and no new entry", *res[0].AppliedChangelogID, first[0].ID)
	}
}

// TestPushTransientRetriedOnce: a transaction that loses its connection
// (syncdata.ErrTransient, say at its write or its commit) is run once more in
// a new transaction, and the batch applies; when the second run loses its
// connection too, the request fails with syncdata.ErrUnavailable (503), with
// no per-event results, and nothing is written.
func TestPushTransientRetriedOnce(t *testing.T) {
	t.Parallel()
	lost := fmt.Errorf("%w: read: connection reset by peer", syncdata.ErrTransient)
	lost = fmt.Errorf("%w (%w)", syncdata.ErrUnavailable, lost)
	for _, method := range []string{"LockScopes", "AppendChangelog", "Commit"} {
		for _, failures := range []int{1, 2} {
			t.Run(fmt.Sprintf("method=%s/failures=%d", method, failures), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, selfOnly)
				fail := failing(method, lost)
				f.db.wrap = func(n int, tx *fakeTx) {
					if n <= failures {
						fail(n, tx)
					}
				}
				before := f.db.state()
				events := []push.Event{
					event(t, "evt-1", "Board", "create", board("b2", "u1")),
					event(t, "evt-2", "Todo", "create", todo("t2", "b2")),
				}
				res, err := f.svc.Push(context.Background(), "u1", nil, events)
				if failures == 2 {
					if !errors.Is(err, syncdata.ErrUnavailable) || res != nil {
						t.Fatalf("Push = %+v, %v; want no results and syncdata.ErrUnavailable", res, err)
					}
					if diff := cmp.Diff(before, f.db.state()); diff != "" {
						t.Errorf("storage changed (-before +after):\n%s", diff)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff([]outcome{applied("evt-1"), applied("evt-2")}, outcomes(t, res)); diff != "" {
						t.Fatalf("results (-want +got):\n%s", diff)
					}
				}
				if f.db.begins != 2 {
					t.Errorf("%d transactions, want 2 (the batch and its one retry)", f.db.begins)
				}
			})
		}
	}
}

// TestPushContextCanceled: a request that ends is not retried event by
// event.
func TestPushContextCanceled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, selfOnly)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.db.wrap = func(_ int, tx *fakeTx) {
		tx.UpsertFunc = func(ctx context.Context, _ string, _ []schema.Record) error {
			cancel()
			return ctx.Err()
		}
	}
	before := f.db.state()
	res, err := f.svc.Push(ctx, "u1", nil, unavailableBatch(t))
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("Push = %+v, %v; want no results and context.Canceled", res, err)
	}
	if f.db.begins != 1 {
		t.Errorf("Begin called %d times, want 1", f.db.begins)
	}
	if diff := cmp.Diff(before, f.db.state()); diff != "" {
		t.Errorf("storage changed (-before +after):\n%s", diff)
	}
}

// TestPushDuplicateEvent: another process commits the same outbox event
// while this one applies it; the insert fails with syncdata.ErrDuplicateEvent
// and the event reports the changelog id that was committed.
func TestPushDuplicateEvent(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		dupTx      int  // the transaction in which the other process commits evt-1
		failBatch  bool // make the batch fail first, so that evt-1 runs in its own transaction
		wantBegins int
	}{
		// batch fails; evt-1 (tx 2) hits the duplicate and is retried (tx 3); evt-2 (tx 4).
		"path=per-event": {dupTx: 2, failBatch: true, wantBegins: 4},
		// the batch hits the duplicate; evt-1 (tx 2) finds it applied; evt-2 (tx 3).
		"path=batch": {dupTx: 1, wantBegins: 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, selfOnly)
			other, err := changelog.Next("", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			f.db.wrap = func(n int, tx *fakeTx) {
				if tc.failBatch && n == 1 {
					tx.UpsertFunc = func(context.Context, string, []schema.Record) error { return errors.New("serialization failure") }
				}
				if n == tc.dupTx {
					next := tx.AppendChangelogFunc
					tx.AppendChangelogFunc = func(ctx context.Context, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
						f.db.commitExternal("u1", changelog.Entry{ID: other, Model: "Board", KeyPath: []byte(`["b2"]`),
							Operation: changelog.Create, ScopeKey: "u1", OutboxEventID: "evt-1"})
						return next(ctx, entries, heads, applied) // fails with syncdata.ErrDuplicateEvent
					}
				}
			}
			res, err := f.svc.Push(context.Background(), "u1", nil, []push.Event{
				event(t, "evt-1", "Board", "create", board("b2", "u1")),
				event(t, "evt-2", "Board", "create", board("b3", "u1")),
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]outcome{applied("evt-1"), applied("evt-2")}, outcomes(t, res)); diff != "" {
				t.Fatalf("results (-want +got):\n%s", diff)
			}
			if got := *res[0].AppliedChangelogID; got != other {
				t.Errorf("evt-1 appliedChangelogId = %s, want the other process's %s", got, other)
			}
			if entries := f.db.entriesOf("evt-1"); len(entries) != 1 {
				t.Errorf("evt-1 has %d changelog entries, want 1: %v", len(entries), entries)
			}
			if f.db.begins != tc.wantBegins {
				t.Errorf("Begin called %d times, want %d", f.db.begins, tc.wantBegins)
			}
		})
	}
}

// TestPushIdempotentPerSubject: an event id names one subject's event. Two
// subjects that use the same id apply two events; a replay answers each
// its own changelog id and writes nothing; a concurrent commit of the same
// id by another subject is no duplicate.
func TestPushIdempotentPerSubject(t *testing.T) {
	t.Parallel()
	f := newFixture(t, selfOnly)
	ctx := context.Background()
	first := map[string]string{}
	for _, sub := range []string{"u1", "u2"} {
		res, err := f.svc.Push(ctx, sub, nil, []push.Event{event(t, "evt-same", "Board", "create", board("b-"+sub, sub))})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]outcome{applied("evt-same")}, outcomes(t, res)); diff != "" {
			t.Fatalf("%s: results (-want +got):\n%s", sub, diff)
		}
		first[sub] = *res[0].AppliedChangelogID
		if !f.db.has("Board", "b-"+sub) {
			t.Errorf("%s: board b-%s not written", sub, sub)
		}
	}
	if first["u1"] == first["u2"] {
		t.Fatalf("both subjects got changelog id %s", first["u1"])
	}
	before := f.db.state()
	for _, sub := range []string{"u2", "u1"} {
		res, err := f.svc.Push(ctx, sub, nil, []push.Event{event(t, "evt-same", "Board", "create", board("b-"+sub, sub))})
		if err != nil {
			t.Fatal(err)
		}
		if got := res[0].AppliedChangelogID; res[0].Error != nil || got == nil || *got != first[sub] {
			t.Errorf("%s replay: %+v, want its own changelog id %s", sub, res[0], first[sub])
		}
	}
	if diff := cmp.Diff(before, f.db.state()); diff != "" {
		t.Errorf("replays wrote (-before +after):\n%s", diff)
	}

	// u3's event evt-x commits in another process while u1 applies its
	// own evt-x: u1's is applied, under its own entry.
	other, err := changelog.Next("", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.db.wrap = func(n int, tx *fakeTx) {
		next := tx.AppendChangelogFunc
		tx.AppendChangelogFunc = func(ctx context.Context, entries []changelog.Entry, heads map[string]string, a syncdata.Applied) error {
			if n == 1 {
				f.db.commitExternal("u3", changelog.Entry{ID: other, Model: "User", KeyPath: []byte(`["u3"]`),
					Operation: changelog.Update, ScopeKey: "u3", OutboxEventID: "evt-x"})
			}
			return next(ctx, entries, heads, a)
		}
	}
	res, err := f.svc.Push(ctx, "u1", nil, []push.Event{event(t, "evt-x", "Board", "create", board("b-x", "u1"))})
	if err != nil {
		t.Fatal(err)
	}
	if got := res[0].AppliedChangelogID; res[0].Error != nil || got == nil || *got == other {
		t.Errorf("u1's evt-x: %+v, want applied under its own entry (not u3's %s)", res[0], other)
	}
	if !f.db.has("Board", "b-x") {
		t.Error("u1's evt-x not written")
	}
}

// TestPushConstraintErrors: constraint violations reported by the store
// become per-event errors of the right type.
func TestPushConstraintErrors(t *testing.T) {
	t.Parallel()
	fk := &syncdata.ConstraintError{Kind: "foreign key", Detail: `Key (boardId)=(b1) is not present in table "Board".`}
	tests := map[string]struct {
		event   func(t *testing.T) push.Event
		wrap    func(int, *fakeTx)
		want    outcome
		wantMsg string // a part of the message
	}{
		"kind=unique,from=store": {
			// u4 takes u1's email: the fake's unique index refuses it.
			event: func(t *testing.T) push.Event {
				u := testkit.User("u4")
				u["email"] = "u1@example.com"
				return event(t, "evt-x", "User", "create", u)
			},
			want:    outcome{ID: "evt-x", Type: push.RecordValidationFailure, Retryable: false},
			wantMsg: "unique constraint violated",
		},
		"kind=unique,op=update": {
			event:   func(t *testing.T) push.Event { return event(t, "evt-x", "Board", "update", board("b1", "u1")) },
			wrap:    failUpsertOf("Board", "b1", &syncdata.ConstraintError{Kind: "unique", Detail: "Key (name)=(Q4) already exists."}),
			want:    outcome{ID: "evt-x", Type: push.RecordValidationFailure, Retryable: false},
			wantMsg: "Key (name)=(Q4) already exists.",
		},
		"kind=foreign_key,op=create": {
			event:   func(t *testing.T) push.Event { return event(t, "evt-x", "Todo", "create", todo("t7", "b1")) },
			wrap:    failUpsertOf("Todo", "t7", fk),
			want:    outcome{ID: "evt-x", Type: push.MissingParent, Retryable: true},
			wantMsg: "parent record does not exist",
		},
		"kind=foreign_key,op=update": {
			event: func(t *testing.T) push.Event { return event(t, "evt-x", "Todo", "update", todo("t1", "b1")) },
			wrap:  failUpsertOf("Todo", "t1", fk),
			want:  outcome{ID: "evt-x", Type: push.MissingParent, Retryable: true},
		},
		"kind=foreign_key,op=delete": {
			event: func(t *testing.T) push.Event { return event(t, "evt-x", "Board", "delete", board("b1", "u1")) },
			wrap: func(_ int, tx *fakeTx) {
				next := tx.DeleteFunc
				tx.DeleteFunc = func(ctx context.Context, model string, keys [][]any) error {
					if model == "Board" {
						return &syncdata.ConstraintError{Kind: "foreign key", Detail: "still referenced"}
					}
					return next(ctx, model, keys)
				}
			},
			want:    outcome{ID: "evt-x", Type: push.RecordValidationFailure, Retryable: true},
			wantMsg: "still referenced",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, anyScope)
			f.db.wrap = tc.wrap
			before := f.db.state()
			res, err := f.svc.Push(context.Background(), "u1", nil, []push.Event{
				event(t, "evt-ok", "Board", "create", board("b9", "u2")),
				tc.event(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]outcome{applied("evt-ok"), tc.want}, outcomes(t, res)); diff != "" {
				t.Fatalf("results (-want +got):\n%s", diff)
			}
			if msg := res[1].Error.Message; !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", msg, tc.wantMsg)
			}
			if !f.db.has("Board", "b9") || len(f.db.entriesOf("evt-ok")) != 1 {
				t.Errorf("the other event was not applied")
			}
			if len(f.db.entriesOf("evt-x")) != 0 {
				t.Errorf("the failed event has changelog entries")
			}
			after := f.db.state()
			for _, model := range []string{"User", "Todo"} {
				if diff := cmp.Diff(before.Records[model], after.Records[model]); diff != "" {
					t.Errorf("%s records changed (-before +after):\n%s", model, diff)
				}
			}
			if _, ok := after.Records["Board"][`["b1"]`]; !ok {
				t.Errorf("board b1 is gone")
			}
		})
	}
}

// TestPushAuthorizerError: a failing Authorizer fails the request; it never
// counts as "allowed", and the batch is not retried event by event.
func TestPushAuthorizerError(t *testing.T) {
	t.Parallel()
	authErr := errors.New("casbin: adapter closed")
	tests := map[string]struct {
		failOn string // the model whose decisions fail
	}{
		"fails=first event":  {failOn: "Board"},
		"fails=later events": {failOn: "Todo"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fakeAuthz{AllowFunc: func(subject, scope, model, _ string) (bool, error) {
				if model == tc.failOn {
					return true, authErr // true must not be taken for an answer
				}
				return subject == scope, nil
			}})
			before := f.db.state()
			res, err := f.svc.Push(context.Background(), "u1", nil, []push.Event{
				event(t, "evt-1", "Board", "create", board("b2", "u1")),
				event(t, "evt-2", "Todo", "create", todo("t2", "b2")),
				event(t, "evt-3", "Todo", "update", todo("t1", "b1")),
			})
			if !errors.Is(err, authErr) || res != nil {
				t.Fatalf("Push = %+v, %v; want no results and the authorizer's error", res, err)
			}
			if diff := cmp.Diff(before, f.db.state()); diff != "" {
				t.Errorf("storage changed (-before +after):\n%s", diff)
			}
			if f.db.begins != 1 {
				t.Errorf("Begin called %d times, want 1 (no per-event fallback)", f.db.begins)
			}
		})
	}
}

// TestPushCleanBatchIsBulk: a clean batch of 100 events takes one
// transaction, a constant number of loads, one upsert per model, one lock
// call with the scopes sorted and one changelog append.
func TestPushCleanBatchIsBulk(t *testing.T) {
	t.Parallel()
	f := newFixture(t, anyScope)
	var events []push.Event
	owners := []string{"u3", "u1", "u2"} // first seen out of order
	for i := range 10 {
		events = append(events, event(t, fmt.Sprintf("evt-b%d", i), "Board", "create", board(fmt.Sprintf("nb%d", i), owners[i%3])))
	}
	for i := range 90 {
		events = append(events, event(t, fmt.Sprintf("evt-t%d", i), "Todo", "create", todo(fmt.Sprintf("nt%d", i), fmt.Sprintf("nb%d", i%10))))
	}
	res, err := f.svc.Push(context.Background(), "admin", nil, events)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outcomes(t, res) {
		if !o.Applied {
			t.Fatalf("event not applied: %+v", o)
		}
	}
	if f.db.begins != 1 {
		t.Errorf("Begin called %d times, want 1", f.db.begins)
	}
	if diff := cmp.Diff([][]string{{"u1", "u2", "u3"}}, f.db.locks); diff != "" {
		t.Errorf("LockScopes calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"Board": 1, "Todo": 1}, f.db.upserts); diff != "" {
		t.Errorf("Upsert calls per model (-want +got):\n%s", diff)
	}
	if f.db.appends != 1 {
		t.Errorf("AppendChangelog called %d times, want 1", f.db.appends)
	}
	// Boards and todos by key, then the users the boards name: one load
	// per model and level, whatever the number of events.
	if f.db.loads > 3 {
		t.Errorf("Load called %d times, want at most 3", f.db.loads)
	}
	// Changelog ids follow the order of the events within each scope.
	last := map[string]string{}
	for i, r := range res {
		e := f.db.entriesOf(r.ID)
		if len(e) != 1 || e[0].ID != *r.AppliedChangelogID {
			t.Fatalf("event %s: entries %v, result %s", r.ID, e, *r.AppliedChangelogID)
		}
		if e[0].ID <= last[e[0].ScopeKey] {
			t.Errorf("event %d: changelog id %s of scope %s is not after %s", i, e[0].ID, e[0].ScopeKey, last[e[0].ScopeKey])
		}
		last[e[0].ScopeKey] = e[0].ID
	}
	if len(last) != 3 {
		t.Errorf("entries in scopes %v, want u1, u2 and u3", last)
	}
}

// TestPushFallbackForgetsFailedAttempt: when the batch transaction fails at
// commit (after ids were allocated), the per-event retry reports only what
// it did itself: no stale changelog id next to an error.
func TestPushFallbackForgetsFailedAttempt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, selfOnly)
	f.db.wrap = func(n int, tx *fakeTx) {
		switch n {
		case 1: // the batch: everything decided, then the commit fails
			tx.CommitFunc = func() error { return errors.New("could not serialize access") }
		case 3: // evt-2's own transaction fails unexpectedly
			tx.UpsertFunc = func(context.Context, string, []schema.Record) error { return errors.New("disk quota exceeded") }
		}
	}
	res, err := f.svc.Push(context.Background(), "u1", nil, []push.Event{
		event(t, "evt-1", "Board", "create", board("b2", "u1")),
		event(t, "evt-2", "Board", "create", board("b3", "u1")),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []outcome{applied("evt-1"), {ID: "evt-2", Type: push.UnknownError, Retryable: true}}
	if diff := cmp.Diff(want, outcomes(t, res)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// TestPushWriteOrder: a batch's writes are its upserts then its deletes,
// one per model, unless an upsert names a record deleted earlier in the
// batch or changes a foreign key: then what came before it is written
// first. Every batch ends in the state the events describe in order.
func TestPushWriteOrder(t *testing.T) {
	t.Parallel()
	type step struct{ Op, Model, Keys string }
	for name, tc := range map[string]struct {
		events func(t *testing.T) []push.Event
		want   []step
		gone   []string // todos that must not exist afterwards
		kept   []string // todos that must exist afterwards
	}{
		"creates and deletes interleaved": {
			events: func(t *testing.T) []push.Event {
				return []push.Event{
					event(t, "e1", "Todo", "create", todo("n1", "b1")),
					event(t, "e2", "Todo", "delete", todo("t0", "b1")),
					event(t, "e3", "Todo", "create", todo("n2", "b1")),
					event(t, "e4", "Todo", "update", todo("t1", "b1")), // same board
					event(t, "e5", "Todo", "delete", todo("n1", "b1")),
				}
			},
			want: []step{{"upsert", "Todo", "n1,n2,t1"}, {"delete", "Todo", "n1,t0"}},
			gone: []string{"t0", "n1"}, kept: []string{"n2", "t1"},
		},
		"re-created after its delete": {
			events: func(t *testing.T) []push.Event {
				return []push.Event{
					event(t, "e1", "Todo", "delete", todo("t0", "b1")),
					event(t, "e2", "Todo", "create", todo("t0", "b1")),
				}
			},
			want: []step{{"delete", "Todo", "t0"}, {"upsert", "Todo", "t0"}},
			kept: []string{"t0"},
		},
		"moved after a delete": {
			events: func(t *testing.T) []push.Event {
				return []push.Event{
					event(t, "e1", "Board", "create", board("b2", "u1")),
					event(t, "e2", "Todo", "delete", todo("t0", "b1")),
					event(t, "e3", "Todo", "update", todo("t1", "b2")), // a new board
				}
			},
			want: []step{{"upsert", "Board", "b2"}, {"delete", "Todo", "t0"}, {"upsert", "Todo", "t1"}},
			gone: []string{"t0"}, kept: []string{"t1"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, anyScope)
			var got []step
			f.db.wrap = func(_ int, tx *fakeTx) {
				up, del := tx.UpsertFunc, tx.DeleteFunc
				tx.UpsertFunc = func(ctx context.Context, m string, recs []schema.Record) error {
					var ids []string
					for _, r := range recs {
						ids = append(ids, r["id"].(string))
					}
					slices.Sort(ids)
					got = append(got, step{"upsert", m, strings.Join(ids, ",")})
					return up(ctx, m, recs)
				}
				tx.DeleteFunc = func(ctx context.Context, m string, keys [][]any) error {
					var ids []string
					for _, k := range keys {
						ids = append(ids, k[0].(string))
					}
					slices.Sort(ids)
					got = append(got, step{"delete", m, strings.Join(ids, ",")})
					return del(ctx, m, keys)
				}
			}
			res, err := f.svc.Push(context.Background(), "u1", nil, tc.events(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range outcomes(t, res) {
				if !o.Applied {
					t.Fatalf("event not applied: %+v", o)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			state := f.db.state()
			for _, id := range tc.gone {
				if _, ok := state.Records["Todo"][`["`+id+`"]`]; ok {
					t.Errorf("todo %s exists, want it deleted", id)
				}
			}
			for _, id := range tc.kept {
				if _, ok := state.Records["Todo"][`["`+id+`"]`]; !ok {
					t.Errorf("todo %s is gone, want it kept", id)
				}
			}
		})
	}
}
