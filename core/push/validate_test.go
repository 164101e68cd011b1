package push_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/testkit"
)

// fakeValidator is a push.Validator made of a func; it records what it saw.
type fakeValidator struct {
	calls    int
	seen     [][]syncdata.ValidationEvent
	validate func(events []syncdata.ValidationEvent) ([]syncdata.Verdict, error)
}

func (v *fakeValidator) Validate(_ context.Context, _ string, events []syncdata.ValidationEvent) ([]syncdata.Verdict, error) {
	v.calls++
	v.seen = append(v.seen, events)
	return v.validate(events)
}

// rejectNamed rejects boards named "bad" and todos titled "bad".
func rejectNamed(events []syncdata.ValidationEvent) ([]syncdata.Verdict, error) {
	out := make([]syncdata.Verdict, len(events))
	for i, e := range events {
		out[i] = syncdata.Verdict{Allow: true}
		if strings.Contains(string(e.Payload), `"bad"`) {
			out[i] = syncdata.Verdict{Message: e.Model + " named bad"}
		}
	}
	return out, nil
}

func validatorFixture(t *testing.T, v push.Validator) *fixture {
	f := newFixture(t, selfOnly)
	sch, own := testkit.Kanban(t)
	f.svc = push.New(sch, own, f.st, selfOnly, v, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	return f
}

func badBoard(id string) map[string]any {
	b := board(id, "u1")
	b["name"] = "bad"
	return b
}

func TestPushValidator(t *testing.T) {
	t.Parallel()
	events := func(t *testing.T) []push.Event {
		return []push.Event{
			event(t, "evt-1", "Board", "create", board("b2", "u1")),
			event(t, "evt-2", "Board", "create", badBoard("b3")),
			event(t, "evt-3", "Todo", "create", todo("t3", "b3")),   // depends on the rejected board
			event(t, "evt-4", "Board", "create", board("b4", "u2")), // another scope: the policy refuses it first
			event(t, "evt-5", "Todo", "create", todo("t2", "b2")),
		}
	}
	t.Run("case=reject-some", func(t *testing.T) {
		t.Parallel()
		v := &fakeValidator{validate: rejectNamed}
		f := validatorFixture(t, v)
		res, err := f.svc.Push(context.Background(), "u1", nil, events(t))
		if err != nil {
			t.Fatal(err)
		}
		want := []outcome{applied("evt-1"), {ID: "evt-2", Type: push.CustomValidationFailed},
			{ID: "evt-3", Type: push.MissingParent, Retryable: true}, {ID: "evt-4", Type: push.ScopeViolation}, applied("evt-5")}
		if diff := cmp.Diff(want, outcomes(t, res)); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		if res[1].Error.Message != "Board named bad" {
			t.Errorf("rejection message %q", res[1].Error.Message)
		}
		if v.calls != 1 || len(v.seen[0]) != 4 {
			t.Fatalf("validator called %d times with %d events; want once with the 4 that passed the policy", v.calls, len(v.seen[0]))
		}
		if e := v.seen[0][0]; e.ID != "evt-1" || e.Model != "Board" || e.Operation != "create" || string(e.Key) != `["b2"]` || e.Scope != "u1" || !strings.Contains(string(e.Payload), `"name":"Board b2"`) {
			t.Errorf("validator saw %+v", e)
		}
		if !f.db.has("Board", "b2") || f.db.has("Board", "b3") || f.db.has("Todo", "t3") || !f.db.has("Todo", "t2") {
			t.Error("stored records do not match the verdicts")
		}
	})
	for name, fn := range map[string]func([]syncdata.ValidationEvent) ([]syncdata.Verdict, error){
		"case=validator-down": func([]syncdata.ValidationEvent) ([]syncdata.Verdict, error) { return nil, errors.New("plugin crashed") },
		"case=wrong-verdict-count": func([]syncdata.ValidationEvent) ([]syncdata.Verdict, error) {
			return []syncdata.Verdict{{Allow: true}}, nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := validatorFixture(t, &fakeValidator{validate: fn})
			before := f.db.state()
			res, err := f.svc.Push(context.Background(), "u1", nil, events(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{0, 1, 2, 4} {
				if res[i].Error == nil || res[i].Error.Type != push.ValidatorUnavailable || !res[i].Error.Retryable {
					t.Errorf("event %s: %+v, want a retryable VALIDATOR_UNAVAILABLE", res[i].ID, res[i].Error)
				}
			}
			if diff := cmp.Diff(before, f.db.state()); diff != "" {
				t.Errorf("something was written (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("case=replay-not-asked-again", func(t *testing.T) {
		t.Parallel()
		v := &fakeValidator{validate: rejectNamed}
		f := validatorFixture(t, v)
		first, _ := f.svc.Push(context.Background(), "u1", nil, events(t)[:1])
		again, err := f.svc.Push(context.Background(), "u1", nil, events(t)[:1])
		if err != nil || *again[0].AppliedChangelogID != *first[0].AppliedChangelogID {
			t.Fatalf("replay: %+v %v", again, err)
		}
		if v.calls != 1 {
			t.Errorf("validator asked %d times; a replay must not ask again", v.calls)
		}
	})
}
