package store

import (
	"context"

	"github.com/syncplane/syncplane/core/changelog"
)

// OneStatementPage reports whether ChangesWithRecords reads a page with
// one statement (tests check which path they exercise).
func (t *Tenant) OneStatementPage() bool { return t.page != nil }

// AppendUncompacted appends entries to the changelog as syncplane did
// before system version 3: without deleting their records' earlier
// entries (the history Compact compacts).
func (t *Tenant) AppendUncompacted(ctx context.Context, entries []changelog.Entry) error {
	st := t.changelogSQL(entries)
	_, err := t.db.ExecContext(ctx, st.sql, st.args...)
	return err
}

// SetSystemVersion writes the tenant's system version, as an older
// syncplane left it.
func (t *Tenant) SetSystemVersion(ctx context.Context, v string) error {
	_, err := t.db.ExecContext(ctx, "UPDATE "+t.prefix+`"_meta" SET value = ? WHERE key = 'system'`, v)
	return err
}

// ReadPagesThroughDatabaseSQL makes PostgreSQL pages read through
// database/sql, as on a connection that is not pgx's, until the returned
// function is called (tests running meanwhile read theirs so too).
func ReadPagesThroughDatabaseSQL() (restore func()) {
	pgxPages.Store(false)
	return func() { pgxPages.Store(true) }
}
