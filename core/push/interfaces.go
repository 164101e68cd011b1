package push

import (
	"context"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// Store opens write transactions on one tenant's storage and reads its
// committed state.
type Store interface {
	Begin(ctx context.Context) (Tx, error)
	// Reads reads committed state outside a transaction (no lock held):
	// what push decides on before it asks the tenant's validator.
	Reads() Reads
}

// Reads are the reads push decides on.
type Reads interface {
	// Load returns committed records of model whose fields equal one of keys.
	Load(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error)
	// AppliedEvents maps the outbox event ids of ids that subject already
	// applied to their changelog ids. An event id names one subject's
	// event: another subject's event with the same id never matches.
	AppliedEvents(ctx context.Context, subject string, ids []string) (map[string]string, error)
	// LastScopes maps key paths of model to the scope of their newest entry.
	LastScopes(ctx context.Context, model string, keyPaths []string) (map[string]string, error)
}

// Tx is one write transaction of a tenant.
type Tx interface {
	Reads
	// AppliedEventsLater is AppliedEvents answered by the function it
	// returns, which the store may send with the transaction's next read
	// (one round trip fewer); the function sends it if nothing did.
	AppliedEventsLater(ctx context.Context, subject string, ids []string) func() (map[string]string, error)
	// LockScopes locks the scopes' head rows and returns their last ids.
	LockScopes(ctx context.Context, scopes []string) (map[string]string, error)
	// Apply performs the writes in order, then appends the changelog
	// entries (at most one per record and scope; each replaces its
	// record's previous entry in the scope), records the applied events
	// (for AppliedEvents, each with its own changelog id, which may be an
	// entry superseded in the batch and never written) and moves
	// the locked scope heads to the given last ids. An applied event that
	// another transaction recorded meanwhile fails it with
	// syncdata.ErrDuplicateEvent.
	Apply(ctx context.Context, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error
	Commit() error
	Rollback() error
}

// Authorizer decides whether subject, holding roles (scope → role, from its
// token), may perform act (create, update, delete) on model in scope.
type Authorizer interface {
	Allow(subject string, roles map[string]string, scope, model, act string) (bool, error)
}

// Validator is a tenant's custom validation (its validator plugin): one
// call per batch with the events that passed schema, scope and policy.
// It returns one verdict per event, in order. An error means the validator
// could not decide (down, crashed, past its deadline, garbage answer): the
// events then fail closed with a retryable VALIDATOR_UNAVAILABLE.
type Validator interface {
	Validate(ctx context.Context, subject string, events []syncdata.ValidationEvent) ([]syncdata.Verdict, error)
}
