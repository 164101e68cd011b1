// Package pull serves a tenant's changelog to a client: the server side of
// prisma-idb's pull. A page holds the entries of the subject's scope after
// the client's cursor, oldest first, each with its record's current state
// (null when the record is gone or no longer readable by the subject),
// read with the page: on PostgreSQL one statement returns the entries, their
// records and each record's current scopes (elsewhere one more query per
// model on the page), never one per entry.
package pull
