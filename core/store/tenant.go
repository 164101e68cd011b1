package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/syncplane/syncplane/core/schema"
)

// Tenant is the storage of one tenant: its record tables, changelog and
// scope heads. It is safe for concurrent use.
type Tenant struct {
	id     string
	db     *bun.DB // where its reads go
	w      *writer // where its writes go
	d      backend
	prefix string // `"t_acme".` on PostgreSQL, "" on SQLite
	tables map[string]*tableInfo
	own    *schema.Ownership
	page   *pageQuery // PostgreSQL's one-statement pull page, when it applies

	// retention is how long the ledger keeps an applied event (0: for
	// ever); lastPrune the Unix nanoseconds of the last pruning.
	retention atomic.Int64
	lastPrune atomic.Int64
	// tombstones is how long a delete entry stays (0: until its record is
	// written again); hadHorizons whether the tenant had dropped
	// tombstones when it was opened (see Horizons).
	tombstones  atomic.Int64
	hadHorizons atomic.Bool

	st *Store
}

// tableInfo is how one model is stored.
type tableInfo struct {
	model   *schema.Model
	table   Table
	name    string   // qualified, quoted table name
	cols    []string // quoted column names, in field order
	selects string   // the select list for all columns
	pk      []string // quoted primary key columns

	byField    map[string]Column
	onConflict string // an upsert's ON CONFLICT clause
	scoped     string // SELECT … FROM … of the records with a scope per ownership path
	paths      int    // how many scope columns scoped reads
}

// Tenant opens a tenant's storage and brings its tables to the layout of
// the given schema: new tables, columns and unique constraints are created,
// a destructive change fails with a *DestructiveError and leaves the tables
// as they were. It is safe to call from several processes at once.
func (s *Store) Tenant(ctx context.Context, id string, sch *schema.Schema, own *schema.Ownership) (*Tenant, error) {
	return s.TenantAt(ctx, id, sch, own, "")
}

// TenantAt is Tenant for a tenant whose data lives on the PostgreSQL
// database at dsn ("" for the main database): its tables, changelog, scope
// heads and notifications are there, its registration in the platform
// tables on the main database. A database that does not answer is a
// syncdata.ErrUnavailable.
func (s *Store) TenantAt(ctx context.Context, id string, sch *schema.Schema, own *schema.Ownership, dsn string) (*Tenant, error) {
	layout, err := LayoutOf(sch, own)
	if err != nil {
		return nil, err
	}
	b, err := s.backendFor(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", id, err)
	}
	db, err := b.tenantDB(id)
	if err != nil {
		return nil, err
	}
	w, err := b.tenantWriter(id)
	if err != nil {
		return nil, err
	}
	t := &Tenant{id: id, db: db, w: w, d: b, prefix: b.tenantPrefix(id), tables: map[string]*tableInfo{}, own: own, st: s}
	for _, tb := range layout.Tables {
		t.tables[tb.Model] = t.newTableInfo(sch.Model(tb.Model), tb)
	}
	for _, ti := range t.tables {
		ti.scoped, ti.paths = t.scopedSelect(ti)
	}
	t.page = t.newPageQuery()
	if err := t.migrate(ctx, layout); err != nil {
		return nil, err
	}
	var horizons int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM (SELECT 1 FROM "+t.prefix+`"_tombstone_horizons" LIMIT 1) AS h`).Scan(&horizons); err != nil {
		return nil, fmt.Errorf("tenant %s: tombstone horizons: %w", id, classify(err))
	}
	t.hadHorizons.Store(horizons > 0)
	_, err = s.platform.ExecContext(ctx, `INSERT INTO syncplane_tenants (id, layout_hash, migrated_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET layout_hash = EXCLUDED.layout_hash, migrated_at = EXCLUDED.migrated_at`,
		id, layout.Hash(), time.Now().UTC().Format(isoMillis))
	if err != nil {
		return nil, fmt.Errorf("tenant %s: register: %w", id, classify(err))
	}
	s.home(id, b)
	return t, nil
}

// schemaName is the PostgreSQL schema of a tenant. Tenant ids are
// [a-z0-9-], so mapping '-' to '_' cannot make two ids collide.
func schemaName(id string) string { return "t_" + strings.ReplaceAll(id, "-", "_") }

func (t *Tenant) newTableInfo(m *schema.Model, tb Table) *tableInfo {
	ti := &tableInfo{model: m, table: tb, name: t.prefix + quote(tb.Name), byField: map[string]Column{}}
	sel := make([]string, len(tb.Columns))
	for i, c := range tb.Columns {
		ti.cols = append(ti.cols, quote(c.Name))
		ti.byField[c.Field] = c
		sel[i] = t.d.selectExpr(quote(c.Name), c)
	}
	ti.selects = strings.Join(sel, ", ")
	for _, c := range tb.PrimaryKey {
		ti.pk = append(ti.pk, quote(c))
	}
	var set []string
	for _, c := range ti.cols {
		if !contains(ti.pk, c) {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	ti.onConflict = " ON CONFLICT (" + strings.Join(ti.pk, ", ") + ")"
	if len(set) == 0 {
		ti.onConflict += " DO NOTHING"
	} else {
		ti.onConflict += " DO UPDATE SET " + strings.Join(set, ", ")
	}
	return ti
}

// migrate runs in one transaction; the backend's lockMigration serializes
// concurrent migrations of the same tenant (on PostgreSQL an advisory
// lock keyed by the tenant, on SQLite the immediate transaction).
func (t *Tenant) migrate(ctx context.Context, layout Layout) error {
	// Unchanged layout (every start, every reload of an unchanged schema):
	// no write transaction, so no wait for SQLite's write lock.
	want, _ := json.Marshal(layout)
	if have, system, err := t.storedMeta(ctx); err == nil && have == string(want) && system == systemVersion {
		return nil
	}
	conn, err := t.w.db.Conn(ctx)
	if err != nil {
		return classify(err)
	}
	defer conn.Close()
	unlock, err := t.d.lockMigration(ctx, conn, t)
	if err != nil {
		return err
	}
	defer unlock()
	return conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, stmt := range t.d.schemaDDL(t) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("tenant %s: create schema: %w", t.id, classify(err))
			}
		}
		for _, stmt := range t.systemDDL() {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("tenant %s: %s: %w", t.id, stmt, classify(err))
			}
		}
		if err := t.upgradeSystem(ctx, tx); err != nil {
			return err
		}
		var old Layout
		var raw string
		err := tx.QueryRowContext(ctx, "SELECT value FROM "+t.prefix+`"_meta" WHERE key = 'layout'`).Scan(&raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return classify(err)
		default:
			if err := json.Unmarshal([]byte(raw), &old); err != nil {
				return fmt.Errorf("tenant %s: stored layout is corrupt: %w", t.id, err)
			}
		}
		changes, err := Diff(old, layout)
		if err != nil {
			return fmt.Errorf("tenant %s: %w", t.id, err)
		}
		now := time.Now()
		for _, c := range changes {
			for _, stmt := range t.changeDDL(c, now) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("tenant %s: %s: %w", t.id, stmt, classify(err))
				}
			}
		}
		b, _ := json.Marshal(layout)
		_, err = tx.ExecContext(ctx, "INSERT INTO "+t.prefix+`"_meta" (key, value) VALUES ('layout', ?), ('system', ?)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, string(b), systemVersion)
		return classify(err)
	})
}

// systemVersion is the version of syncplane's own tables of a tenant,
// kept under the key "system" in its _meta table:
//
//   - none (tenants created before it existed): a changelog entry's
//     outbox_event_id was unique in the tenant and was the idempotency key
//     of push;
//   - "2": the _applied_events ledger holds the idempotency key, (subject,
//     event id), and outbox_event_id is a plain column;
//   - "3": the changelog is compacted (push deletes a record's previous
//     entry in a scope when it writes a new one) through the index
//     _changelog_scope_record, and the ledger has _applied_events_at for
//     its retention window (Tenant.SetLedgerRetention);
//   - "4": tombstones can expire (Tenant.SetTombstoneRetention, the
//     partial index _changelog_tombstones and the _tombstone_horizons
//     table), a tenant may keep its full history apart (_history), and the
//     history a tenant wrote before version 3 is compacted online after
//     the upgrade (the _meta key "compaction" is "pending" until then,
//     see Tenant.Compact).
const systemVersion = "4"

// systemDDL creates syncplane's own tables of a tenant, as systemVersion
// has them.
//
// _applied_events is the ledger of applied events: push records each
// event it applies under (subject, event_id) with the id of its own
// changelog entry, in the same transaction, and answers a replay from it
// (Tx.AppliedEvents). The changelog keeps outbox_event_id for readers
// (pull sends it as outboxEventId); nothing reads the changelog by it, so
// it has no index.
func (t *Tenant) systemDDL() []string {
	txt := t.d.sortedText()
	return []string{
		"CREATE TABLE IF NOT EXISTS " + t.prefix + `"_meta" (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
		t.changelogDDL(`"_changelog"`),
		`CREATE INDEX IF NOT EXISTS "_changelog_scope_id" ON ` + t.prefix + `"_changelog" (scope_key, id)`,
		`CREATE INDEX IF NOT EXISTS "_changelog_record" ON ` + t.prefix + `"_changelog" (model, key_path, id)`,
		`CREATE INDEX IF NOT EXISTS "_changelog_scope_record" ON ` + t.prefix + `"_changelog" (scope_key, model, key_path)`,
		"CREATE TABLE IF NOT EXISTS " + t.prefix + `"_scope_heads" (scope_key ` + txt + " PRIMARY KEY, last_id TEXT NOT NULL)",
		"CREATE TABLE IF NOT EXISTS " + t.prefix + `"_applied_events" (subject ` + txt + " NOT NULL, event_id " + txt + " NOT NULL, " +
			"changelog_id TEXT NOT NULL, applied_at " + t.d.timestampType() + " NOT NULL, PRIMARY KEY (subject, event_id))",
		`CREATE INDEX IF NOT EXISTS "_applied_events_at" ON ` + t.prefix + `"_applied_events" (applied_at)`,
		`CREATE INDEX IF NOT EXISTS "_changelog_tombstones" ON ` + t.prefix + `"_changelog" (created_at) WHERE operation = 'delete'`,
		"CREATE TABLE IF NOT EXISTS " + t.prefix + `"_tombstone_horizons" (scope_key ` + txt + " PRIMARY KEY, dropped_through TEXT NOT NULL)",
		"CREATE TABLE IF NOT EXISTS " + t.prefix + `"_history" (id ` + txt + " PRIMARY KEY, subject TEXT NOT NULL, " +
			"model TEXT NOT NULL, key_path TEXT NOT NULL, operation TEXT NOT NULL, scope_key TEXT NOT NULL, " +
			"outbox_event_id TEXT NOT NULL, record " + t.d.jsonType() + ", created_at " + t.d.timestampType() + " NOT NULL)",
	}
}

func (t *Tenant) changelogDDL(name string) string {
	txt := t.d.sortedText()
	return "CREATE TABLE IF NOT EXISTS " + t.prefix + name + " (" +
		"id " + txt + " PRIMARY KEY, model TEXT NOT NULL, key_path TEXT NOT NULL, operation TEXT NOT NULL, " +
		"scope_key " + txt + " NOT NULL, outbox_event_id TEXT NOT NULL, created_at " + t.d.timestampType() + " NOT NULL)"
}

// upgradeSystem brings syncplane's own tables of a tenant created by an
// earlier version to systemVersion, inside the migration's transaction
// (after systemDDL has created what is missing). It does nothing when the
// tenant is at systemVersion already, or new.
//
// To version 2: the applied events are copied from the changelog into the
// _applied_events ledger, then the changelog's unique constraint on
// outbox_event_id goes. The old changelog does not say which subject
// pushed an entry; the copy takes the entry's scope for its subject, which
// is right under the default policy (a subject writes its own scope, whose
// key is its id). In a scope that several subjects write (an organisation
// granted through roles), an old event is credited to the scope: sent again
// by its real subject, it is applied again (a create or an update is an
// upsert of the same record, a delete deletes again) instead of answering
// its first changelog id. The entries a move wrote (ids with MovedSuffix)
// are not events and are not copied.
//
// On PostgreSQL the copy only reads the changelog, so pushes of processes
// still running the previous version go on meanwhile; dropping the
// constraint comes last and holds the changelog's lock only until the
// commit. An event such a process applies after the copy has no ledger
// row: sent again after the upgrade, it is applied again. On SQLite the
// changelog is rebuilt without the constraint (SQLite cannot drop one),
// under the migration's write lock.
func (t *Tenant) upgradeSystem(ctx context.Context, tx bun.Tx) error {
	var version string
	err := tx.QueryRowContext(ctx, "SELECT value FROM "+t.prefix+`"_meta" WHERE key = 'system'`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("tenant %s: system version: %w", t.id, classify(err))
	}
	if version == systemVersion {
		return nil
	}
	// From any earlier version, the history written before version 3 is
	// compacted after the migration commits (Store.Tenant starts it), in
	// small batches beside the pushes: the migration itself stays short.
	// A new tenant has nothing to compact.
	var layouts int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.prefix+`"_meta" WHERE key = 'layout'`).Scan(&layouts); err != nil {
		return fmt.Errorf("tenant %s: layout: %w", t.id, classify(err))
	}
	if layouts > 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.prefix+`"_meta" (key, value) VALUES ('compaction', 'pending') `+
			"ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"); err != nil {
			return fmt.Errorf("tenant %s: mark compaction: %w", t.id, classify(err))
		}
	}
	if version == "2" || version == "3" {
		// 2 → 3 → 4 only add indexes and tables, which systemDDL has just
		// created.
		return nil
	}
	notMoved := t.d.position("outbox_event_id", movedSuffix) + " = 0"
	stmts := []string{"INSERT INTO " + t.prefix + `"_applied_events" (subject, event_id, changelog_id, applied_at) ` +
		"SELECT scope_key, outbox_event_id, id, created_at FROM " + t.prefix + `"_changelog" WHERE ` + notMoved +
		" ON CONFLICT (subject, event_id) DO NOTHING"}
	drop, err := t.d.dropOutboxUnique(ctx, tx, t)
	if err != nil {
		return err
	}
	stmts = append(stmts, drop...)
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("tenant %s: upgrade to system version %s: %s: %w", t.id, systemVersion, stmt, classify(err))
		}
	}
	return nil
}

// movedSuffix is push.MovedSuffix (store cannot import push): it marks
// the outbox event ids of the entries a move between scopes writes.
const movedSuffix = "~moved-"

// changeDDL renders one additive change.
func (t *Tenant) changeDDL(c Change, now time.Time) []string {
	tb := c.Table
	name := t.prefix + quote(tb.Name)
	switch c.Kind {
	case "table":
		var defs []string
		for _, col := range tb.Columns {
			def := quote(col.Name) + " " + t.d.columnType(col)
			if !col.Nullable {
				def += " NOT NULL"
			}
			defs = append(defs, def)
		}
		defs = append(defs, "PRIMARY KEY ("+quoteAll(tb.PrimaryKey)+")")
		for _, fk := range tb.ForeignKeys {
			defs = append(defs, fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE %s",
				quoteAll(fk.Columns), t.prefix+quote(fk.RefTable), quoteAll(fk.RefColumns), fk.OnDelete))
		}
		stmts := []string{"CREATE TABLE " + name + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"}
		for _, u := range tb.Uniques {
			stmts = append(stmts, t.uniqueDDL(tb, u))
		}
		for _, fk := range tb.ForeignKeys {
			stmts = append(stmts, "CREATE INDEX "+quote(indexName(tb.Name, fk.Columns, "idx"))+" ON "+name+" ("+quoteAll(fk.Columns)+")")
		}
		return stmts
	case "column":
		col := c.Column
		def := "ALTER TABLE " + name + " ADD COLUMN " + quote(col.Name) + " " + t.d.columnType(*col)
		if c.FK != nil {
			def += fmt.Sprintf(" REFERENCES %s (%s) ON DELETE %s", t.prefix+quote(c.FK.RefTable), quoteAll(c.FK.RefColumns), c.FK.OnDelete)
		}
		if col.Default != nil {
			def += " DEFAULT " + t.d.literal(*col, now)
		}
		if !col.Nullable {
			def += " NOT NULL"
		}
		stmts := []string{def}
		if c.FK != nil {
			stmts = append(stmts, "CREATE INDEX "+quote(indexName(tb.Name, c.FK.Columns, "idx"))+" ON "+name+" ("+quoteAll(c.FK.Columns)+")")
		}
		return stmts
	case "unique":
		return []string{t.uniqueDDL(tb, c.Unique)}
	case "dropunique":
		return []string{"DROP INDEX IF EXISTS " + t.prefix + quote(indexName(tb.Name, c.Unique, "key"))}
	}
	return nil
}

func (t *Tenant) uniqueDDL(tb *Table, cols []string) string {
	return "CREATE UNIQUE INDEX " + quote(indexName(tb.Name, cols, "key")) + " ON " + t.prefix + quote(tb.Name) + " (" + quoteAll(cols) + ")"
}

// indexName follows Prisma's <table>_<columns>_<suffix> convention, cut
// with a hash to PostgreSQL's 63-byte identifier limit.
func indexName(table string, cols []string, suffix string) string {
	n := table + "_" + strings.Join(cols, "_") + "_" + suffix
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return fmt.Sprintf("%s_%x", n[:50], sum[:6])
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

// storedMeta reads the applied layout and system version, "" when there
// is none yet.
func (t *Tenant) storedMeta(ctx context.Context) (layout, system string, err error) {
	var exists bool
	if err := t.db.QueryRowContext(ctx, t.d.metaExistsSQL(t)).Scan(&exists); err != nil || !exists {
		return "", "", err
	}
	rows, err := t.db.QueryContext(ctx, "SELECT key, value FROM "+t.prefix+`"_meta" WHERE key IN ('layout', 'system')`)
	if err != nil {
		return "", "", err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return "", "", err
		}
		if k == "layout" {
			layout = v
		} else {
			system = v
		}
	}
	return layout, system, rows.Err()
}
