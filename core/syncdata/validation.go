package syncdata

import "encoding/json"

// ValidationEvent is one event of a push as a tenant's validator sees it.
type ValidationEvent struct {
	ID        string          // the client's outbox event id
	Model     string          //
	Operation string          // create, update, delete
	Key       json.RawMessage // JSON array of the primary key values
	Payload   json.RawMessage // the validated record (for a delete, the stored record or the payload sent)
	Scope     string          // the scope the event resolved to
}

// Verdict is a validator's answer for one event.
type Verdict struct {
	Allow   bool
	Message string // why not, when Allow is false
}
