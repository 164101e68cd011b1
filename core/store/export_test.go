package store

import (
	"context"
	"time"

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
	_, err := t.w.db.ExecContext(ctx, st.sql, st.args...)
	return err
}

// SetSystemVersion writes the tenant's system version, as an older
// syncplane left it.
func (t *Tenant) SetSystemVersion(ctx context.Context, v string) error {
	_, err := t.w.db.ExecContext(ctx, "UPDATE "+t.prefix+`"_meta" SET value = ? WHERE key = 'system'`, v)
	return err
}

// OpenSQLite opens the SQLite store under dataDir as Open does, with the
// busy timeout busy on the tenants' files instead of busyTimeout (0: a
// statement that meets the lock of another connection fails at once with
// SQLITE_BUSY) and, when walMaxFrames is not 0, that bound on their WAL.
func OpenSQLite(dataDir string, busy time.Duration, walMaxFrames int) (*Store, error) {
	db, b, err := openSQLiteStore(dataDir)
	if err != nil {
		return nil, err
	}
	b.busy = busy
	if walMaxFrames != 0 {
		b.walMax = walMaxFrames
	}
	return newStore(b, db), nil
}

// ReadPagesThroughDatabaseSQL makes PostgreSQL pages read through
// database/sql, as on a connection that is not pgx's, until the returned
// function is called (tests running meanwhile read theirs so too).
func ReadPagesThroughDatabaseSQL() (restore func()) {
	pgxPages.Store(false)
	return func() { pgxPages.Store(true) }
}
