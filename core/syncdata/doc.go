// Package syncdata holds the values that push, pull and the validator
// plugin host exchange with the storage and with each other, so that none
// of them imports another or core/store:
//
//   - the write of a push transaction: Write (the records of one model
//     upserted or deleted), Applied and AppliedEvent (the ledger rows of
//     the applied events, push's idempotency key);
//   - a pull page: PageEntry, a changelog entry with its record;
//   - a validator's view of a batch: ValidationEvent and Verdict;
//   - the storage errors callers tell apart: ErrUnavailable (503) and,
//     among those, ErrTransient (worth one more attempt) and
//     ErrTenantMissing; ErrDuplicateEvent, ErrNoCursor and
//     *ConstraintError.
//
// core/store produces and consumes these values; push, pull and
// pluginhost declare the interfaces they need in their own terms. The
// package imports no database driver, and neither do push, pull and
// pluginhost: deps_test.go keeps it so.
package syncdata
