package push

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/syncplane/syncplane/core/scope"
)

// validate is the first phase of a push to a tenant with a validator. It
// decides the events on committed state, without a transaction (so no lock
// is held while the plugin runs), asks the validator once for every event
// that passed schema, scope and policy, and returns the events it allowed.
// Events that failed to decide keep their error; rejected ones get
// CUSTOM_VALIDATION_FAILED; when the validator cannot decide, every event
// it was asked about gets a retryable VALIDATOR_UNAVAILABLE. The second
// phase (apply) decides the allowed events again in its transaction and
// writes them; an event never reaches it without the validator's allow.
func (s *Service) validate(ctx context.Context, who *caller, items []*item, todo []int) ([]int, error) {
	reads := s.store.Reads()
	ids := make([]string, len(todo))
	for j, i := range todo {
		ids[j] = items[i].ev.ID
	}
	applied, err := reads.AppliedEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	var live, replays []int
	for _, i := range todo {
		if _, ok := applied[items[i].ev.ID]; ok {
			replays = append(replays, i) // apply answers them; the validator saw them before
			continue
		}
		live = append(live, i)
	}
	set := scope.NewSet(s.sch, s.own, reads)
	lastScopes, err := s.load(ctx, reads, set, items, live)
	if err != nil {
		return nil, err
	}
	var asked []int
	var events []ValidationEvent
	for _, i := range live {
		c, evErr, err := s.decide(ctx, who, set, lastScopes, items[i])
		if err != nil {
			return nil, err
		}
		if evErr != nil {
			items[i].result.Error = evErr
			continue
		}
		ev, err := s.validationEvent(items[i], c)
		if err != nil {
			return nil, err
		}
		asked = append(asked, i)
		events = append(events, ev)
	}
	if len(asked) == 0 {
		return replays, nil
	}
	verdicts, err := s.validator.Validate(ctx, who.id, events)
	if err == nil && len(verdicts) != len(events) {
		err = fmt.Errorf("validator answered %d verdicts for %d events", len(verdicts), len(events))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Warn("tenant validator unavailable; failing its events closed", "events", len(asked), "err", err)
		for _, i := range asked {
			items[i].result.Error = fail(ValidatorUnavailable, true, "the tenant's validator is unavailable; retry later")
		}
		return replays, nil
	}
	allowed := replays
	for j, i := range asked {
		if !verdicts[j].Allow {
			msg := verdicts[j].Message
			if msg == "" {
				msg = "rejected by the tenant's validator"
			}
			items[i].result.Error = fail(CustomValidationFailed, false, "%s", msg)
			continue
		}
		allowed = append(allowed, i)
	}
	slices.Sort(allowed)
	return allowed, nil
}

// validationEvent is what the validator sees of an accepted event.
func (s *Service) validationEvent(it *item, c change) (ValidationEvent, error) {
	rec := it.rec
	if rec == nil {
		rec = keyRecord(it.model, it.pk)
	}
	payload, err := it.model.MarshalRecord(scope.Clean(rec))
	if err != nil {
		return ValidationEvent{}, fmt.Errorf("marshal %s for the validator: %w", it.model.Name, err)
	}
	return ValidationEvent{ID: it.ev.ID, Model: it.model.Name, Operation: it.ev.Operation,
		Key: json.RawMessage(scope.KeyJSON(it.pk)), Payload: payload, Scope: c.scope}, nil
}
