package push

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/syncdata"
)

// validate asks the tenant's validator about the events todo, decided
// on committed state (the transaction comes later), and returns those it
// allows (with replays, which it saw before) and its verdicts on the
// others: the refusals of scope and policy, CUSTOM_VALIDATION_FAILED, or
// VALIDATOR_UNAVAILABLE (retryable) when it cannot decide.
func (s *Service) validate(ctx context.Context, who *caller, items []*item, todo []int) ([]int, verdicts, error) {
	reads := s.store.Reads()
	done, live, err := replays(ctx, reads, who.id, items, todo)
	if err != nil {
		return nil, nil, err
	}
	allowed := slices.Sorted(maps.Keys(done)) // apply answers them; the validator saw them before
	changes, out, err := s.decider(who, reads).decideAllTraced(ctx, items, live)
	if err != nil {
		return nil, nil, err
	}
	if len(changes) == 0 {
		return allowed, out, nil
	}
	events := make([]syncdata.ValidationEvent, len(changes))
	for j, c := range changes {
		if events[j], err = s.validationEvent(items[c.idx], c); err != nil {
			return nil, nil, err
		}
	}
	answers, err := s.validator.Validate(ctx, who.id, events)
	if err == nil && len(answers) != len(events) {
		err = fmt.Errorf("validator answered %d verdicts for %d events", len(answers), len(events))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		s.log.Warn("tenant validator unavailable; failing its events closed", "events", len(changes), "err", err)
		for _, c := range changes {
			out[c.idx] = refused(fail(ValidatorUnavailable, true, "the tenant's validator is unavailable; retry later"))
		}
		return allowed, out, nil
	}
	for j, c := range changes {
		if !answers[j].Allow {
			msg := answers[j].Message
			if msg == "" {
				msg = "rejected by the tenant's validator"
			}
			out[c.idx] = refused(fail(CustomValidationFailed, false, "%s", msg))
			continue
		}
		allowed = append(allowed, c.idx)
	}
	slices.Sort(allowed)
	return allowed, out, nil
}

// validationEvent is what the validator sees of an accepted event.
func (s *Service) validationEvent(it *item, c change) (syncdata.ValidationEvent, error) {
	rec := it.rec
	if rec == nil {
		rec = keyRecord(it.model, it.pk)
	}
	payload, err := it.model.MarshalRecord(scope.Clean(rec))
	if err != nil {
		return syncdata.ValidationEvent{}, fmt.Errorf("marshal %s for the validator: %w", it.model.Name, err)
	}
	return syncdata.ValidationEvent{ID: it.ev.ID, Model: it.model.Name, Operation: it.ev.Operation,
		Key: json.RawMessage(scope.KeyJSON(it.pk)), Payload: payload, Scope: c.scope}, nil
}
