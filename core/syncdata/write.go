package syncdata

import (
	"encoding/json"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
)

// A Write is one step of a transaction's writes: records of one model
// inserted or replaced by primary key (Upsert), or records of one model
// deleted by primary key (Delete), the database applying each relation's
// onDelete to their children.
type Write struct {
	Model  string
	Upsert []schema.Record
	Delete [][]any
}

// Applied names the events a push transaction applies, for idempotency:
// one row per event in the tenant's _applied_events ledger, keyed by
// (Subject, EventID). An event id names one subject's event: another
// subject's event with the same id is another event.
type Applied struct {
	Subject string
	Events  []AppliedEvent
	// History is set for a tenant that keeps its full history apart
	// (manifest changelog: history): every entry the batch allocated,
	// superseded ones included, in order, for the _history table, which
	// is never compacted and which pull never reads.
	History []HistoryEntry
}

// HistoryEntry is one row of a tenant's full history: a changelog entry
// and the record as the entry's event wrote it (null for a delete and for
// the entries a move wrote); the subject is Applied's.
type HistoryEntry struct {
	changelog.Entry
	Record json.RawMessage
}

// AppliedEvent is one applied event: its outbox event id and the id of
// its own changelog entry.
type AppliedEvent struct {
	EventID     string
	ChangelogID string
}

// Lookup names the records of Model whose Fields equal one of Keys (a
// value per field, in order).
type Lookup struct {
	Model  string
	Fields []string
	Keys   [][]any
}
