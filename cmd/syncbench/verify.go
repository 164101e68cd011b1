package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Entry is one pulled changelog entry.
type Entry struct {
	ID            string          `json:"id"`
	ChangelogID   string          `json:"changelogId"`
	Model         string          `json:"model"`
	KeyPath       []any           `json:"keyPath"`
	Operation     string          `json:"operation"`
	ScopeKey      string          `json:"scopeKey"`
	OutboxEventID string          `json:"outboxEventId"`
	Record        json.RawMessage `json:"record"`
}

// Verification collects what went wrong; it is safe for concurrent use.
type Verification struct {
	mu       sync.Mutex
	Failures int      `json:"failures"`
	Messages []string `json:"messages,omitempty"` // the first maxMessages
}

const maxMessages = 20

// OK reports whether nothing failed.
func (v *Verification) OK() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.Failures == 0
}

func (v *Verification) failf(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.Failures++
	if len(v.Messages) < maxMessages {
		v.Messages = append(v.Messages, fmt.Sprintf(format, args...))
	}
}

// Acks maps an acknowledged event id to its changelog id.
type Acks map[string]string

// VerifyUser checks one user's stream, pulled from empty after its pushes,
// against what it pushed. The changelog is compacted (it keeps a record's
// latest entry in a scope): the acknowledged changelog id of each record's
// last event exactly once, none of an event a later one of its record
// superseded, nothing else, ids increasing, and the records' final state,
// replaying entries in order, equal to u.Final. With history (the
// reference server, which keeps every entry), every acknowledged changelog
// id exactly once instead.
func VerifyUser(v *Verification, u *UserPlan, acks Acks, entries []Entry, history bool) {
	events := map[string]Event{}  // changelog id -> event
	latest := map[string]string{} // record key -> changelog id of its last event
	for _, round := range u.Rounds {
		for _, e := range round {
			cid, ok := acks[e.ID]
			if !ok {
				v.failf("user %s: event %s was not acknowledged", u.ID, e.ID)
				continue
			}
			events[cid] = e
			id, _ := e.Payload["id"].(string)
			if k := recordKey(e.EntityType, id); cid > latest[k] {
				latest[k] = cid
			}
		}
	}
	superseded := func(cid string) bool {
		if history {
			return false
		}
		ev := events[cid]
		id, _ := ev.Payload["id"].(string)
		return latest[recordKey(ev.EntityType, id)] != cid
	}
	seen := map[string]int{}
	state := map[string]json.RawMessage{}
	last := ""
	for i, en := range entries {
		if en.ChangelogID != en.ID {
			v.failf("user %s: entry %s has changelogId %s", u.ID, en.ID, en.ChangelogID)
		}
		if i > 0 && en.ID <= last {
			v.failf("user %s: entry %s pulled after %s (ids must increase)", u.ID, en.ID, last)
		}
		last = en.ID
		seen[en.ID]++
		ev, ok := events[en.ID]
		if !ok {
			v.failf("user %s: pulled entry %s (event %q) that no push of this user acknowledged", u.ID, en.ID, en.OutboxEventID)
			continue
		}
		if seen[en.ID] > 1 {
			v.failf("user %s: entry %s pulled %d times", u.ID, en.ID, seen[en.ID])
			continue
		}
		if superseded(en.ID) {
			v.failf("user %s: pulled entry %s (event %s), which a later event of its record superseded", u.ID, en.ID, en.OutboxEventID)
		}
		id, _ := ev.Payload["id"].(string)
		if en.OutboxEventID != ev.ID || en.Model != ev.EntityType || en.Operation != ev.Operation ||
			en.ScopeKey != u.ID || len(en.KeyPath) != 1 || en.KeyPath[0] != id {
			v.failf("user %s: entry %s is {event %s, %s %s %v, scope %s}, want {event %s, %s %s [%s], scope %s}",
				u.ID, en.ID, en.OutboxEventID, en.Operation, en.Model, en.KeyPath, en.ScopeKey,
				ev.ID, ev.Operation, ev.EntityType, id, u.ID)
		}
		key := recordKey(en.Model, fmt.Sprint(en.KeyPath...))
		if en.Operation == "delete" || len(en.Record) == 0 || string(en.Record) == "null" {
			delete(state, key)
		} else {
			state[key] = en.Record
		}
	}
	missing := 0
	for cid, ev := range events {
		if seen[cid] == 0 && !superseded(cid) {
			missing++
			if missing <= 3 {
				v.failf("user %s: acknowledged entry %s (event %s) was never pulled", u.ID, cid, ev.ID)
			}
		}
	}
	if missing > 3 {
		v.failf("user %s: %d more acknowledged entries were never pulled", u.ID, missing-3)
	}
	compareState(v, u, state)
}

func compareState(v *Verification, u *UserPlan, state map[string]json.RawMessage) {
	keys := map[string]bool{}
	for k := range u.Final {
		keys[k] = true
	}
	for k := range state {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		want, wok := u.Final[k]
		got, gok := state[k]
		switch {
		case !gok:
			v.failf("user %s: %s should exist after the pull, but is gone", u.ID, k)
		case !wok:
			v.failf("user %s: %s should be gone after the pull, but is %s", u.ID, k, got)
		default:
			var g any
			if err := json.Unmarshal(got, &g); err != nil {
				v.failf("user %s: %s: record %s: %v", u.ID, k, got, err)
				continue
			}
			if w := normalize(want); !reflect.DeepEqual(g, w) {
				wb, _ := json.Marshal(w)
				v.failf("user %s: %s is %s, want %s", u.ID, k, got, wb)
			}
		}
	}
}

// normalize turns a payload into what decoding its JSON gives.
func normalize(m map[string]any) any {
	b, _ := json.Marshal(m)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// summary is the first messages joined, for errors and logs.
func (v *Verification) summary() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.Messages, "\n")
}
