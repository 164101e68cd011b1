package syncdata

import "github.com/syncplane/syncplane/core/schema"

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
}

// AppliedEvent is one applied event: its outbox event id and the id of
// its own changelog entry.
type AppliedEvent struct {
	EventID     string
	ChangelogID string
}
