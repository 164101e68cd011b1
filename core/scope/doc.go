// Package scope resolves which scope a record belongs to by following its
// ownership chain up to the tenant's root model (see schema.Ownership).
//
// A Set is the working set of one push batch or one pull page: records
// loaded from the store in bulk (one query per model and ownership level,
// never one per record) plus, for push, the batch's own writes applied in
// order, so that a Todo pushed right after its Board resolves through it.
package scope
