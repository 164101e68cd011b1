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
// The interfaces push needs (Store, Tx, Authorizer) are declared in
// interfaces.go; core/store and core/policy implement them.
package push
