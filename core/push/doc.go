// Package push applies a client's batch of outbox events to a tenant: it is
// the server side of prisma-idb's push.
//
// Push validates every event against the tenant's schema, resolves the
// record's scope through its ownership chain, asks the Authorizer whether the
// subject may act there, and writes records and changelog entries in one
// transaction per batch. What a batch needs is loaded in bulk (idempotency
// ids, the records it touches, their ancestors) and written in bulk (one
// multi-row statement per model and kind of write); only when that
// transaction fails does push fall back to one transaction per event, so
// that one bad event never undoes or blocks another.
//
// A batch takes effect in dependency order whatever its order (a child
// sent before its parent waits for it; a child deleted after its parent
// keeps the scope it had when the batch began), and MISSING_PARENT is
// retryable only while the parent has never existed. With the manifest's
// rootFromToken, EnsureRoot creates a subject's root record from its token.
//
// The files follow the stages: push.go the pipeline and its verdicts,
// decide.go scope, policy and order, move.go moves between scopes,
// write.go the write batching, validate.go the validator stage, root.go
// root records from tokens. docs/architecture.md walks a push through
// them. The interfaces push needs (Store, Tx, Authorizer, Validator) are
// declared in interfaces.go; core/store, core/policy and core/pluginhost
// implement them.
package push
