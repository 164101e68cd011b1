package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	msqlite "modernc.org/sqlite" // also the database/sql driver "sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// sqlite is the embedded SQLite backend: the platform database is
// <data>/syncplane.db and each tenant has a file of its own,
// <data>/tenants/<id>.db. One process owns the files.
type sqlite struct {
	dataDir string
	busy    time.Duration // busy_timeout of the tenants' files
	walMax  int           // walMaxFrames of the tenants' files

	mu      sync.Mutex
	tenants map[string]*sqliteFile
}

// sqliteFile is a tenant's file, opened as two pools. In WAL mode readers
// never wait for the writer, and SQLite lets one connection write at a
// time: read serves the reads, and write, one connection, every write
// (see writer). That connection keeps its page cache from one transaction
// to the next (a connection drops its cache when another one has written
// the file), and writers wait for each other in this process, in order,
// rather than in SQLite's busy handler, which sleeps up to 100 ms between
// tries for the lock and lets a newcomer take it before those that
// waited.
//
// Checkpoints (copying the WAL's pages into the file, and waiting for the
// disk) run beside the writer, in the background (checkpoints), not inside
// the commit of the write that crossed SQLite's threshold: there they
// would hold up every write queued behind it.
type sqliteFile struct {
	read  *bun.DB
	write *writer

	walMax int           // walMaxFrames
	wrote  chan struct{} // a write ended since the last checkpoint (capacity 1)
	stop   context.CancelFunc
	done   chan struct{} // closed when checkpoints has returned
}

const (
	// sqliteReaders is the size of a file's pool of reading connections:
	// with the writer, a file has the 8 connections (and page caches, of
	// up to 2 MB each) that one pool of 8 had.
	sqliteReaders = 7
	// busyTimeout is how long a statement waits for a lock another
	// process (or another handle in this one) holds on a file before it
	// fails with SQLITE_BUSY, and how long a write transaction waits for
	// its turn (writer.maxWait).
	busyTimeout = 10 * time.Second
	// checkpointPause is the least time between two background
	// checkpoints of a file.
	checkpointPause = 100 * time.Millisecond
	// walMaxFrames bounds the WAL of a file (in pages, about 40 MB) that
	// writes never leave alone long enough for a checkpoint to reach its
	// end, which SQLite needs to start the WAL over: past it, a checkpoint
	// runs while it holds the turn to write (see checkpoints). After one
	// that could not reach the end, the next waits for finishPause.
	walMaxFrames = 10000
	finishPause  = time.Second
)

// openSQLiteStore opens the platform database under dataDir (created if
// missing).
func openSQLiteStore(dataDir string) (*bun.DB, *sqlite, error) {
	if err := os.MkdirAll(filepath.Join(dataDir, "tenants"), 0o750); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	db, err := openSQLite(filepath.Join(dataDir, "syncplane.db"), 8, busyTimeout)
	if err != nil {
		return nil, nil, err
	}
	return db, &sqlite{dataDir: dataDir, busy: busyTimeout, walMax: walMaxFrames, tenants: map[string]*sqliteFile{}}, nil
}

// openSQLiteFile opens a tenant's file: its readers, its writer and its
// background checkpoints.
func openSQLiteFile(path string, busy time.Duration, walMax int) (*sqliteFile, error) {
	read, err := openSQLite(path, sqliteReaders, busy)
	if err != nil {
		return nil, err
	}
	// The writer's statement journals (what undoes one statement of a
	// transaction that fails) stay in memory: past 64 kB SQLite would
	// spill them to a temporary file, created, written and deleted in a
	// batch's upsert of 100 records.
	write, err := openSQLite(path, 1, busy, "wal_autocheckpoint(0)", "temp_store(MEMORY)")
	if err != nil {
		read.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &sqliteFile{read: read, write: &writer{db: write, turn: make(chan struct{}, 1), maxWait: busyTimeout},
		walMax: walMax, wrote: make(chan struct{}, 1), stop: stop, done: make(chan struct{})}
	write.AddQueryHook(f)
	go f.checkpoints(ctx)
	return f, nil
}

// BeforeQuery and AfterQuery make the file a bun.QueryHook of its writer:
// every statement that ends there (a COMMIT, or a write outside a
// transaction) wakes the background checkpoints.
func (f *sqliteFile) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (f *sqliteFile) AfterQuery(context.Context, *bun.QueryEvent) {
	select {
	case f.wrote <- struct{}{}:
	default:
	}
}

// checkpoints runs a passive checkpoint after writes, at most once per
// checkpointPause, until ctx ends: the only checkpoints of the file while
// it is open (the writer's automatic ones are off). A passive checkpoint
// neither waits for the writer nor holds it up: it copies the pages of
// the commits that no reader still needs an older version of, while the
// writer goes on appending. SQLite starts the WAL over (rather than
// appending to it) only when a write begins after a checkpoint reached
// its end: when writes follow each other without a pause, that is never,
// so past walMaxFrames a last checkpoint runs while it holds the turn to
// write (finish). That one too stops short of the end when a reader still
// reads an older version of the pages: then the WAL grows until the next,
// finishPause later. A failed checkpoint is left to the next one.
func (f *sqliteFile) checkpoints(ctx context.Context) {
	defer close(f.done)
	var retry time.Time // of a finish that could not reach the end
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wrote:
		}
		if frames, _, err := f.checkpoint(ctx); err == nil && frames >= f.walMax && !time.Now().Before(retry) {
			if !f.finish(ctx) {
				retry = time.Now().Add(finishPause)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(checkpointPause):
		}
	}
}

// finish checkpoints the whole WAL while it holds the turn to write, so
// that the next write starts the WAL over, and reports whether it reached
// the end. The checkpoint before it has copied all but the commits of the
// last moment: the writes queued behind wait for the copy of these, and
// for two fsyncs (of the WAL, and of the file, which a checkpoint that
// reaches the end of the WAL waits for).
func (f *sqliteFile) finish(ctx context.Context) bool {
	if f.write.wait(ctx) != nil {
		return false
	}
	defer f.write.done()
	frames, copied, err := f.checkpoint(ctx)
	return err == nil && copied == frames
}

// checkpoint runs a passive checkpoint and returns the size of the WAL
// and how much of it is in the file, in pages.
func (f *sqliteFile) checkpoint(ctx context.Context) (frames, copied int, err error) {
	var busy int
	err = f.read.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, copied, err
}

// close stops the checkpoints and closes the pools (closing the file's
// last connection checkpoints the whole WAL).
func (f *sqliteFile) close() []error {
	f.stop()
	<-f.done
	return []error{f.write.db.Close(), f.read.Close()}
}

// openSQLite opens a pool of conns connections to one SQLite file, with
// WAL, the busy timeout busy, foreign keys and immediate (write-locking)
// transactions, and the given further pragmas. With synchronous=NORMAL a
// commit writes the WAL without waiting for the disk (fsync), which
// happens at checkpoints: a crash of the process loses nothing, a power
// failure or an OS crash may lose the commits since the latest checkpoint,
// and never corrupts the file.
func openSQLite(path string, conns int, busy time.Duration, pragmas ...string) (*bun.DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	for _, p := range pragmas {
		dsn += "&_pragma=" + p
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sqldb.SetMaxOpenConns(conns)
	sqldb.SetMaxIdleConns(conns)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	// Switching a new file to WAL needs a lock that SQLite does not wait
	// for (busy_timeout does not apply): when another store opens the same
	// file at that moment (two processes starting), the first connection
	// fails with SQLITE_BUSY. Try again for a while.
	deadline := time.Now().Add(10 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := db.Ping()
		if err == nil {
			return db, nil
		}
		var se *msqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			db.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		time.Sleep(wait)
	}
}

// tenantDB opens a tenant's file on first use, and returns its readers.
func (s *sqlite) tenantDB(id string) (*bun.DB, error) {
	f, err := s.file(id)
	if err != nil {
		return nil, err
	}
	return f.read, nil
}

// tenantWriter returns the writer of a tenant's file (see sqliteFile).
func (s *sqlite) tenantWriter(id string) (*writer, error) {
	f, err := s.file(id)
	if err != nil {
		return nil, err
	}
	return f.write, nil
}

// file opens a tenant's file on first use.
func (s *sqlite) file(id string) (*sqliteFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.tenants[id]; ok {
		return f, nil
	}
	f, err := openSQLiteFile(filepath.Join(s.dataDir, "tenants", id+".db"), s.busy, s.walMax)
	if err != nil {
		return nil, err
	}
	s.tenants[id] = f
	return f, nil
}

// tenantPrefix: a tenant's file holds its tables only.
func (*sqlite) tenantPrefix(string) string { return "" }

func (s *sqlite) close() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, f := range s.tenants {
		errs = append(errs, f.close()...)
		delete(s.tenants, id)
	}
	return errs
}

// listen: there is nothing to listen to (one process owns the files).
func (*sqlite) listen(context.Context, Listener) error {
	return errors.New("listen: only PostgreSQL has cross-process notifications")
}

func (*sqlite) columnType(c Column) string {
	if c.List {
		return "TEXT"
	}
	switch c.Type {
	case schema.Int, schema.BigInt, schema.Boolean:
		return "INTEGER"
	case schema.Float:
		return "REAL"
	case schema.Bytes:
		return "BLOB"
	}
	return "TEXT" // String, enums, DateTime (ISO-8601 UTC text), Json, Decimal
}

func (*sqlite) timestampType() string { return "TEXT" }
func (*sqlite) sortedText() string    { return "TEXT" }
func (*sqlite) jsonType() string      { return "TEXT" }
func (*sqlite) skipLocked() string    { return "" }

// literal: SQLite's ADD COLUMN takes only constant defaults, so now() is
// the time of the migration.
func (*sqlite) literal(c Column, now time.Time) string {
	if isNow(c) {
		return "'" + now.UTC().Format(isoMillis) + "'"
	}
	return jsonLiteral(c, "1", "0", func(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" })
}

func (*sqlite) encode(typ string, v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(isoMillis)
	case json.RawMessage:
		return string(x)
	case []any:
		return encodeList(typ, x)
	}
	return v
}

// selectExpr reads Bytes as hex text: the driver returns an empty BLOB as
// nil, which would make it indistinguishable from NULL.
func (*sqlite) selectExpr(q string, c Column) string {
	if c.Type == schema.Bytes && !c.List {
		return "CASE WHEN " + q + " IS NULL THEN NULL ELSE hex(" + q + ") END"
	}
	return q
}

func (*sqlite) nowSQL() string { return "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')" }

// scanTarget reads Bytes from their hex text (see selectExpr) and DateTime
// from ISO-8601 text.
func (*sqlite) scanTarget(c Column) (any, func() (any, error)) {
	if !c.List {
		switch c.Type {
		case schema.Bytes:
			var s sql.NullString
			return &s, func() (any, error) {
				if !s.Valid {
					return nil, nil
				}
				b, err := hex.DecodeString(s.String)
				if err != nil {
					return nil, fmt.Errorf("column %s: stored Bytes: %w", c.Name, err)
				}
				return b, nil
			}
		case schema.DateTime:
			var s sql.NullString
			return &s, func() (any, error) {
				if !s.Valid {
					return nil, nil
				}
				t, err := time.Parse(time.RFC3339Nano, s.String)
				if err != nil {
					return nil, fmt.Errorf("column %s: stored DateTime %q: %w", c.Name, s.String, err)
				}
				return t.UTC(), nil
			}
		}
	}
	return scanValue(c)
}

func (*sqlite) keyPathElem(k int, _ bool) string { return "(c.key_path ->> " + strconv.Itoa(k) + ")" }

func (*sqlite) rowID() string { return "rowid" }

func (*sqlite) position(col, needle string) string {
	return "instr(" + col + ", " + stringLiteral(needle) + ")"
}

// schemaDDL: the tenant's file is its namespace.
func (*sqlite) schemaDDL(*Tenant) []string { return nil }

// lockMigration: the migration's immediate transaction holds the file's
// write lock.
func (*sqlite) lockMigration(context.Context, bun.Conn, *Tenant) (func(), error) {
	return func() {}, nil
}

func (*sqlite) metaExistsSQL(*Tenant) string {
	return "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = '_meta'"
}

// dropOutboxUnique: SQLite cannot drop a constraint, so a changelog that
// has one is rebuilt without it, under the migration's write lock.
func (*sqlite) dropOutboxUnique(ctx context.Context, tx bun.Tx, t *Tenant) ([]string, error) {
	var unique int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_index_list('_changelog') WHERE "unique" = 1 AND origin = 'u'`).Scan(&unique)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: changelog indexes: %w", t.id, classify(err))
	}
	if unique == 0 {
		return nil, nil
	}
	stmts := []string{
		`DROP TABLE IF EXISTS "_changelog_v2"`,
		t.changelogDDL(`"_changelog_v2"`),
		`INSERT INTO "_changelog_v2" (id, model, key_path, operation, scope_key, outbox_event_id, created_at) ` +
			`SELECT id, model, key_path, operation, scope_key, outbox_event_id, created_at FROM "_changelog"`,
		`DROP TABLE "_changelog"`,
		`ALTER TABLE "_changelog_v2" RENAME TO "_changelog"`}
	return append(stmts, t.systemDDL()...), nil // the changelog's indexes went with the old table
}

// apply runs one statement per step: SQLite has no data-modifying
// subqueries, and no round trips to save.
func (*sqlite) apply(ctx context.Context, x *Tx, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
	var stmts []stmt
	for _, w := range writes {
		st, err := x.t.writeSQL(w)
		if err != nil {
			return err
		}
		if st.sql != "" {
			stmts = append(stmts, st)
		}
	}
	if len(applied.Events) > 0 {
		stmts = append(stmts, x.t.ledgerSQL(applied))
	}
	if len(applied.History) > 0 {
		stmts = append(stmts, x.t.historySQL(applied))
	}
	if len(entries) > 0 {
		stmts = append(stmts, x.t.supersededSQL(entries), x.t.changelogSQL(entries))
		if len(heads) > 0 {
			stmts = append(stmts, x.t.headsSQL(heads))
		}
	}
	for _, st := range stmts {
		if _, err := x.tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return x.t.d.constraint(err)
		}
	}
	return nil
}

func (*sqlite) lockScopes(ctx context.Context, x *Tx, scopes []string) (map[string]string, error) {
	var b strings.Builder
	args := make([]any, 0, len(scopes))
	b.WriteString("INSERT INTO " + x.t.prefix + `"_scope_heads" (scope_key, last_id) VALUES `)
	for i, s := range scopes {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, '')")
		args = append(args, s)
	}
	b.WriteString(" ON CONFLICT (scope_key) DO UPDATE SET scope_key = EXCLUDED.scope_key RETURNING scope_key, last_id")
	rows, err := x.tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, classify(err)
	}
	return stringPairs(rows, make(map[string]string, len(scopes)))
}

func (*sqlite) queryKeys(ctx context.Context, t *Tenant, db bun.IConn, q string, ti *tableInfo, alias string, fields []string, keys [][]any) (*sql.Rows, error) {
	where, args := t.keyFilter(ti, alias, fields, keys)
	return db.QueryContext(ctx, q+" WHERE "+where, args...)
}

func (*sqlite) appliedEvents(ctx context.Context, t *Tenant, db bun.IConn, subject string, ids []string) (*sql.Rows, error) {
	return db.QueryContext(ctx, "SELECT event_id, changelog_id FROM "+t.prefix+`"_applied_events" WHERE subject = ? AND event_id IN (?)`, subject, bun.In(ids))
}

// entriesSQL: ?1 is a JSON array of [scope, cursor] pairs and ?2 the
// limit (no LATERAL, and at most 500 terms in a compound SELECT): each
// scope's range ends at its limit-th entry after the cursor, found by one
// index seek, so that no scope is read past what the page can hold.
func (*sqlite) entriesSQL(tbl string) string {
	return "SELECT c.id, c.model, c.key_path, c.operation, c.scope_key, c.outbox_event_id, c.created_at" +
		" FROM json_each(?1) AS s JOIN " + tbl + " AS c ON c.scope_key = s.value ->> 0 AND c.id > s.value ->> 1" +
		" AND c.id <= coalesce((SELECT i.id FROM " + tbl + " AS i WHERE i.scope_key = s.value ->> 0 AND i.id > s.value ->> 1" +
		" ORDER BY i.id LIMIT 1 OFFSET ?2 - 1), '~') ORDER BY c.id LIMIT ?2"
}

func (*sqlite) queryEntries(ctx context.Context, t *Tenant, q string, stmt *sql.Stmt, after map[string]string, limit int) (*sql.Rows, error) {
	scopes, afters := cursorArrays(after)
	pairs := make([][2]string, len(scopes))
	for i, sc := range scopes {
		pairs[i] = [2]string{sc, afters[i]}
	}
	arg, _ := json.Marshal(pairs) // strings only: cannot fail
	if stmt != nil {
		return stmt.QueryContext(ctx, string(arg), int64(limit))
	}
	return t.db.DB.QueryContext(ctx, q, string(arg), int64(limit))
}

// pageRows: the page statement is prepared once (parsing it costs about as
// much as running it), and read through database/sql.
func (d *sqlite) pageRows(ctx context.Context, t *Tenant, pq *pageQuery, after map[string]string, limit int, row func(pageRow) (bool, error)) error {
	stmt, err := pq.prepare(ctx, t.db.DB)
	if err != nil {
		return err
	}
	rows, err := d.queryEntries(ctx, t, pq.sql, stmt, after, limit)
	if err != nil {
		return classify(err)
	}
	return scanPage(rows, newSQLRow(pq.kinds, true), row)
}

// changes reads one limited subquery per scope, merged by the database.
func (*sqlite) changes(ctx context.Context, t *Tenant, after map[string]string, limit int) (*sql.Rows, error) {
	scopes, afters := cursorArrays(after)
	var b strings.Builder
	args := make([]any, 0, 3*len(scopes)+1)
	for i, sc := range scopes {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT * FROM (SELECT %s FROM %s\"_changelog\" WHERE scope_key = ? AND id > ? ORDER BY id LIMIT ?) AS s%d", entryColumns, t.prefix, i)
		args = append(args, sc, afters[i], limit)
	}
	query := b.String()
	if len(scopes) > 1 {
		query = "SELECT " + entryColumns + " FROM (" + query + ") AS u ORDER BY id LIMIT ?"
		args = append(args, limit)
	}
	return t.db.QueryContext(ctx, query, args...)
}

func (*sqlite) constraint(err error) error {
	var se *msqlite.Error
	if errors.As(err, &se) {
		// The extended code says which constraint failed; SQLite names
		// the table only in the message.
		msg := se.Error()
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			if strings.Contains(msg, "_applied_events.") {
				return syncdata.ErrDuplicateEvent
			}
			detail := msg
			if i := strings.Index(msg, "UNIQUE"); i >= 0 {
				detail = strings.TrimSpace(msg[i:])
			}
			return &syncdata.ConstraintError{Kind: "unique", Detail: detail}
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, sqlite3.SQLITE_CONSTRAINT_TRIGGER: // TRIGGER: an ON DELETE RESTRICT
			return &syncdata.ConstraintError{Kind: "foreign key", Detail: "a referenced record does not exist, or the record is still referenced"}
		}
	}
	return classify(err)
}
