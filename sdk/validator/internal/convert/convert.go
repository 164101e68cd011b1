// Package convert translates between the validator SDK's plain Go values and
// the generated protobuf types of the contract (validatorv1), in both
// directions, like terraform-plugin-go's internal toproto/fromproto. It is
// internal to sdk/validator: tenant authors never see the wire types.
//
// JSON fields (keys, payloads, where clauses, records) are decoded with
// encoding/json into plain values: objects become map[string]any, arrays
// []any, numbers float64, strings string, booleans bool, null nil.
package convert

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

// DefaultRejectMessage is the message sent for a rejection whose message is
// empty, so the client always learns why.
const DefaultRejectMessage = "rejected by the tenant's validator"

// Event is one event of a batch, decoded from the wire. sdk/validator copies
// it into its public Event.
type Event struct {
	ID        string
	Model     string
	Operation string
	Key       []any
	Payload   map[string]any
	Scope     string
}

// EventsFromProto decodes the events of a ValidateRequest. An empty key or
// payload decodes to nil; a key must be a JSON array and a payload a JSON
// object (or null).
func EventsFromProto(pbs []*validatorv1.Event) ([]Event, error) {
	evs := make([]Event, len(pbs))
	for i, pb := range pbs {
		ev, err := EventFromProto(pb)
		if err != nil {
			return nil, fmt.Errorf("event %d (%s): %w", i, pb.GetId(), err)
		}
		evs[i] = ev
	}
	return evs, nil
}

// EventFromProto decodes one event.
func EventFromProto(pb *validatorv1.Event) (Event, error) {
	ev := Event{
		ID:        pb.GetId(),
		Model:     pb.GetModel(),
		Operation: pb.GetOperation(),
		Scope:     pb.GetScope(),
	}
	if s := pb.GetKeyJson(); s != "" {
		if err := json.Unmarshal([]byte(s), &ev.Key); err != nil {
			return Event{}, fmt.Errorf("key_json is not a JSON array: %w", err)
		}
	}
	if s := pb.GetPayloadJson(); s != "" {
		if err := json.Unmarshal([]byte(s), &ev.Payload); err != nil {
			return Event{}, fmt.Errorf("payload_json is not a JSON object: %w", err)
		}
	}
	return ev, nil
}

// EventToProto encodes one event (the host's direction; used by tests).
func EventToProto(ev Event) (*validatorv1.Event, error) {
	pb := &validatorv1.Event{Id: ev.ID, Model: ev.Model, Operation: ev.Operation, Scope: ev.Scope}
	if ev.Key != nil {
		b, err := json.Marshal(ev.Key)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		pb.KeyJson = string(b)
	}
	if ev.Payload != nil {
		b, err := json.Marshal(ev.Payload)
		if err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		pb.PayloadJson = string(b)
	}
	return pb, nil
}

// Verdict is the decision on one event; sdk/validator's Verdict converts to
// it directly.
type Verdict struct {
	Allow   bool
	Message string
}

// VerdictsToProto encodes verdicts. A rejection without a message gets
// DefaultRejectMessage; an allow carries no message.
func VerdictsToProto(vs []Verdict) []*validatorv1.Verdict {
	pbs := make([]*validatorv1.Verdict, len(vs))
	for i, v := range vs {
		pb := &validatorv1.Verdict{Allow: v.Allow}
		if !v.Allow {
			pb.Message = v.Message
			if pb.Message == "" {
				pb.Message = DefaultRejectMessage
			}
		}
		pbs[i] = pb
	}
	return pbs
}

// VerdictsFromProto decodes verdicts (the host's direction; used by tests).
func VerdictsFromProto(pbs []*validatorv1.Verdict) []Verdict {
	vs := make([]Verdict, len(pbs))
	for i, pb := range pbs {
		vs[i] = Verdict{Allow: pb.GetAllow(), Message: pb.GetMessage()}
	}
	return vs
}

// InfoToProto encodes a plugin's self-description.
func InfoToProto(name, version string, capabilities []string) *validatorv1.InfoResponse {
	return &validatorv1.InfoResponse{Name: name, Version: version, Capabilities: capabilities}
}

// WhereToJSON encodes a where clause as a JSON object; nil is "{}" (every
// record).
func WhereToJSON(where map[string]any) (string, error) {
	if where == nil {
		return "{}", nil
	}
	b, err := json.Marshal(where)
	if err != nil {
		return "", fmt.Errorf("where: %w", err)
	}
	return string(b), nil
}

// LimitToProto maps a Find limit to the wire: a limit ≤ 0 is 0 (the host's
// default); one beyond uint32 is clamped (the host caps it anyway).
func LimitToProto(limit int) uint32 {
	switch {
	case limit <= 0:
		return 0
	case uint64(limit) > math.MaxUint32:
		return math.MaxUint32
	default:
		return uint32(limit)
	}
}

// RecordsFromProto decodes the records of a FindResponse; each must be a
// JSON object.
func RecordsFromProto(recs []string) ([]map[string]any, error) {
	out := make([]map[string]any, len(recs))
	for i, s := range recs {
		if err := json.Unmarshal([]byte(s), &out[i]); err != nil || out[i] == nil {
			if err == nil {
				err = fmt.Errorf("null")
			}
			return nil, fmt.Errorf("record %d is not a JSON object: %w", i, err)
		}
	}
	return out, nil
}
