// Package pull serves a tenant's changelog to a client: the server side of
// prisma-idb's pull. A page holds the entries of the subject's scopes after
// the client's cursor, oldest first, each with its record's current state
// (null when the record is gone or no longer readable by the subject). The
// entries and their records come from one statement
// (store.Tenant.ReadPageJSON, each record already JSON) and are taken one
// at a time until the page's limit or its byte budget (pullPageBytes) is
// reached, each appended, encoded, to a pooled buffer that the HTTP API
// sends (Service.PullJSON); a record named by several entries of a page is
// encoded once. A union pull's cursor holds a position per scope, inline
// when small and otherwise stored in the tenant's database (cursor.go), so
// that it stays small whatever the number of scopes. In a tenant that drops
// expired tombstones, a cursor also carries when its reader began, and a
// reader behind a tombstone dropped after it began is answered ErrGone
// (410) so that it resyncs (Service.checkHorizons).
package pull
