// Package changelog holds the domain types of a tenant's changelog: the
// entries that push writes and pull serves, and the allocation of their ids.
//
// Changelog ids are UUIDv7-formatted strings. Within one scope they strictly
// increase in commit order: the push service allocates them with Next while
// it holds the scope's head row locked in its write transaction, so a reader
// that follows a cursor never skips an entry committed behind it.
package changelog
