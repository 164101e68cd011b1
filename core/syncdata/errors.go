package syncdata

import "errors"

// ErrUnavailable marks errors where the database could not be reached or
// refused service; the HTTP layer answers them with 503.
var ErrUnavailable = errors.New("storage unavailable")

// ErrTransient marks the unavailable errors that one more attempt on
// another connection can cure at once: the connection broke under the
// statement (a server restart or pg_terminate_backend, a reset socket),
// or the transaction lost a serialization or deadlock conflict. Every
// ErrTransient is an ErrUnavailable. Nothing of the failed transaction was
// committed, except when the connection broke during COMMIT itself, which
// push's idempotency covers.
var ErrTransient = errors.New("storage connection lost")

// ErrTenantMissing marks a statement that found the tenant's tables (or its
// PostgreSQL schema) missing: dropped under a running server. It is an
// ErrUnavailable: the tenant answers 503 until its tables are back (a
// server start, a reload of the tenant or `syncplane migrate` creates
// them), and then works again without a restart.
var ErrTenantMissing = errors.New("the tenant's tables are missing")

// ErrDuplicateEvent is returned when a transaction records an applied
// event (a subject's event id, see Applied) that another transaction
// committed meanwhile.
var ErrDuplicateEvent = errors.New("outbox event already applied")

// ErrNoCursor: no positions are stored under the id a cursor names.
var ErrNoCursor = errors.New("no stored cursor positions under that id")

// ConstraintError is a write refused by a unique or foreign key constraint.
type ConstraintError struct {
	Kind   string // "unique" or "foreign key"
	Detail string // the database's own words
}

func (e *ConstraintError) Error() string { return e.Kind + " constraint violated: " + e.Detail }
