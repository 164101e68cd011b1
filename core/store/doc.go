// Package store is syncplane's storage: the platform database and one
// database namespace per tenant, on PostgreSQL (production, through bun's
// pgdialect and the pgx driver) or SQLite (the embedded default, through bun's
// sqlitedialect and the pure-Go modernc driver).
//
// A tenant's records live in typed tables derived from its Prisma schema
// (see Layout): in the PostgreSQL schema t_<id>, or in the SQLite file
// <data>/tenants/<id>.db. Next to them sit the tenant's _changelog and
// _scope_heads tables, the _applied_events ledger (push's idempotency key:
// a subject's event id, see syncdata.Applied; rows older than the tenant's
// retention are pruned, see Tenant.SetLedgerRetention) and a _meta table that remembers the
// applied layout, so that a schema change can be diffed, applied when it is
// additive and refused when it is destructive, and the version of these
// own tables, so that a tenant created by an earlier version is upgraded
// when it is loaded (see Tenant.upgradeSystem).
//
// Every query of a tenant goes through a *Tenant handle made for that tenant:
// no call takes a tenant id that could be left out. Where PostgreSQL and SQLite
// differ (where a tenant's tables live, column types, value encoding, DDL
// and migration locks, the statements of push and pull, notifications,
// constraint errors), the difference is a method of the backend interface
// (backend.go), which Open chooses once: postgres (pg.go, notify.go) or
// sqlite (sqlite.go). No other code asks which database it runs on.
//
// The values push, pull and the validator host exchange with the store
// (syncdata.Write, syncdata.Applied, syncdata.PageEntry, the storage
// errors) live in core/syncdata, so that those packages need not import
// this one and its drivers.
//
// On PostgreSQL the statements of push and pull (pg.go) are prepared once
// per connection and take their rows as array parameters (unnest, = ANY),
// so that the database parses and plans them once instead of once per
// batch; a batch without deletes writes its records, changelog entries
// and scope heads in one statement (see Tx.Apply). A write transaction
// (Tx) runs over pgx's native interface and pipelines its statements
// (pgtx.go): BEGIN, the ledger lookup and the first loads go in one round
// trip, the writes with COMMIT in another; database/sql, for bun, sits on
// the same pgxpool. The changelog is
// compacted: the statement that inserts a record's entry deletes the
// record's previous entry in that scope, so a scope holds one entry per
// record (its latest, a delete for a deleted record). History written
// before compaction existed is compacted online in batches (Tenant.Compact,
// started by Tenant.ResumeCompaction); delete entries past a tenant's
// tombstone retention are dropped with the scope's horizon moved in the
// same transaction (Tenant.DropTombstones, Tenant.Horizons); a tenant that
// keeps its full history gets every entry in _history too (Applied.History,
// Tenant.History). Everything else goes
// through bun, which renders arguments into the SQL text. A record is read
// with the scopes its ownership paths resolve to in the same query
// (Tenant.LoadScoped: a correlated subquery per intermediate hop), and a
// pull page with its records in one statement (Tenant.ReadPageJSON), each
// record's JSON written straight from the row's columns (pagerow.go); on
// PostgreSQL that statement's rows are read through pgx in binary format
// rather than through database/sql.
//
// On SQLite a tenant's file has a pool of connections for reads and one
// connection for every write (sqliteFile): push's write transactions take
// turns on it in the order they asked (writer), instead of waiting for
// the file's lock in SQLite's busy handler, and checkpoints run in the
// background rather than in a commit (docs/architecture.md, "Writing to
// SQLite").
//
// On a Citus cluster with schema-based sharding each tenant's schema is a
// distributed schema, all of its tables on one node; nothing here depends
// on it, and Store.Distribution reports which tenants are placed that way
// (citus.go, docs/citus.md).
//
// Pull pages may be read from PostgreSQL streaming replicas
// (Store.AddReplicas, replica.go): a replica answers a page only once it
// has replayed the heads the page's scopes have on the primary when the
// pull begins. A tenant may live on a PostgreSQL database of its own
// (Store.TenantAt, placement.go), with its own pool and listening
// connection; the platform tables stay on the main database (see
// docs/architecture.md, "Pulls from read replicas" and "Tenants on their
// own databases").
//
// Errors that say the database cannot serve now are syncdata.ErrUnavailable (503),
// told apart by type and code, never by text (errors.go); syncdata.ErrTransient
// among them (a connection that broke, a serialization conflict) is worth
// one more attempt, which database/sql makes by itself for a dead pooled
// connection outside a transaction (conn.go), a write transaction for a
// connection dead at BEGIN (pgTx.read), and push for its transaction.
package store
