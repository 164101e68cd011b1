package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// The hot statements of push and pull on PostgreSQL.
//
// bun renders arguments into the SQL text, so PostgreSQL parses and plans
// every statement anew: for a 100-row upsert that is most of the work. The
// statements below instead have one shape whatever the number of rows —
// rows travel as one array parameter per column (unnest, = ANY) — and are
// sent through the same database/sql pool as prepared statements that pgx
// caches per connection, with binary parameters. Everything else (DDL,
// migrations, rare reads, SQLite) goes through bun.

// prepared makes pgx prepare a statement once per connection and reuse it
// (the pool's default mode is the simple protocol, see Open): after a few
// executions PostgreSQL keeps a generic plan, which saves planning every
// time and, with sequential scans priced out (Open), reads through the
// indexes however small the tables were when it was made.
var prepared any = pgx.QueryExecModeCacheStatement

// pgArgs numbers the parameters of one statement (or of several combined
// into one).
type pgArgs struct{ args []any }

// bind adds v and returns its placeholder, cast to typ when typ is set.
// A slice of strings travels as one array literal (arrayLiteral).
func (p *pgArgs) bind(v any, typ string) string {
	switch x := v.(type) {
	case []string:
		v = arrayLiteral(len(x), func(i int) (string, bool) { return x[i], true })
	case []*string:
		v = arrayLiteral(len(x), func(i int) (string, bool) {
			if x[i] == nil {
				return "", false
			}
			return *x[i], true
		})
	}
	p.args = append(p.args, v)
	ph := "$" + strconv.Itoa(len(p.args))
	if typ != "" {
		ph += "::" + typ
	}
	return ph
}

// arrayLiteral renders n strings (el returns false for NULL) as a
// PostgreSQL array literal, {"a","b\"c",NULL}: one text parameter that the
// server parses, where pgx would encode a []string element by element,
// boxing each into an interface (an allocation per element).
func arrayLiteral(n int, el func(int) (string, bool)) string {
	size := 2
	for i := range n {
		s, _ := el(i)
		size += len(s) + 3
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		s, ok := el(i)
		if !ok {
			b.WriteString("NULL")
			continue
		}
		b.WriteByte('"')
		for start := 0; ; {
			j := strings.IndexAny(s[start:], `"\`)
			if j < 0 {
				b.WriteString(s[start:])
				break
			}
			b.WriteString(s[start : start+j])
			b.WriteByte('\\')
			b.WriteByte(s[start+j])
			start += j + 1
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func (p *pgArgs) all() []any { return append([]any{prepared}, p.args...) }

// pgArray turns one column's values into a typed Go slice that pgx sends
// as a PostgreSQL array (nil elements are NULL), with the array's SQL type
// and the cast that turns an element into the column's type ("" if none).
func pgArray(c Column, vals []any) (arr any, typ, cast string, err error) {
	bad := func(v any) error { return fmt.Errorf("column %s (%s): unexpected Go type %T", c.Name, c.Type, v) }
	str := func(v any) (string, bool) { s, ok := v.(string); return s, ok }
	switch {
	case c.List:
		arr, err = typed(vals, bad, func(v any) (string, bool) {
			l, ok := v.([]any)
			return encodeList(c.Type, l), ok
		})
		return arr, "text[]", "jsonb", err
	case c.Type == schema.Int || c.Type == schema.BigInt:
		arr, err = typed(vals, bad, func(v any) (int64, bool) { n, ok := v.(int64); return n, ok })
		return arr, "bigint[]", "", err
	case c.Type == schema.Float:
		arr, err = typed(vals, bad, func(v any) (float64, bool) { f, ok := v.(float64); return f, ok })
		return arr, "float8[]", "", err
	case c.Type == schema.Boolean:
		arr, err = typed(vals, bad, func(v any) (bool, bool) { b, ok := v.(bool); return b, ok })
		return arr, "bool[]", "", err
	case c.Type == schema.DateTime:
		arr, err = typed(vals, bad, func(v any) (time.Time, bool) { t, ok := v.(time.Time); return t.UTC(), ok })
		return arr, "timestamptz[]", "", err
	case c.Type == schema.Bytes:
		out := make([][]byte, len(vals))
		for i, v := range vals {
			if v == nil {
				continue
			}
			b, ok := v.([]byte)
			if !ok {
				return nil, "", "", bad(v)
			}
			if b == nil {
				b = []byte{} // an empty value, not NULL
			}
			out[i] = b
		}
		return out, "bytea[]", "", nil
	case c.Type == schema.JSON:
		arr, err = typed(vals, bad, func(v any) (string, bool) { raw, ok := v.(json.RawMessage); return string(raw), ok })
		return arr, "text[]", "jsonb", err
	case c.Type == schema.Decimal:
		arr, err = typed(vals, bad, str)
		return arr, "text[]", "numeric", err
	}
	arr, err = typed(vals, bad, str) // String, enums
	return arr, "text[]", "", err
}

// typed converts vals with conv into a []T when none is nil, else into a
// []*T whose nil elements are NULL: pgx encodes the former about twice as
// fast, and most columns hold no NULL.
func typed[T any](vals []any, bad func(any) error, conv func(any) (T, bool)) (any, error) {
	nulls := false
	for _, v := range vals {
		if v == nil {
			nulls = true
			break
		}
	}
	if !nulls {
		out := make([]T, len(vals))
		for i, v := range vals {
			x, ok := conv(v)
			if !ok {
				return nil, bad(v)
			}
			out[i] = x
		}
		return out, nil
	}
	out := make([]*T, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		x, ok := conv(v)
		if !ok {
			return nil, bad(v)
		}
		out[i] = &x
	}
	return out, nil
}

// pgRows renders "unnest($1::t1[], …) AS alias(a0, …)" over the given
// columns of rows, and the select list that casts each element to its
// column's type.
func pgRows(p *pgArgs, cols []Column, rows [][]any, alias string) (from, selects string, err error) {
	arrays := make([]string, len(cols))
	names := make([]string, len(cols))
	sel := make([]string, len(cols))
	vals := make([]any, len(rows))
	for j, c := range cols {
		for i, r := range rows {
			vals[i] = r[j]
		}
		arr, typ, cast, err := pgArray(c, vals)
		if err != nil {
			return "", "", err
		}
		arrays[j] = p.bind(arr, typ)
		names[j] = "a" + strconv.Itoa(j)
		sel[j] = alias + "." + names[j]
		if cast != "" {
			sel[j] += "::" + cast
		}
	}
	return "unnest(" + strings.Join(arrays, ", ") + ") AS " + alias + "(" + strings.Join(names, ", ") + ")",
		strings.Join(sel, ", "), nil
}

// keyColumns are the columns of fields (as keys of records of ti).
func (ti *tableInfo) keyColumns(fields []string) ([]Column, error) {
	out := make([]Column, len(fields))
	for i, f := range fields {
		c, ok := ti.byField[f]
		if !ok {
			return nil, fmt.Errorf("model %s has no column for field %q", ti.model.Name, f)
		}
		out[i] = c
	}
	return out, nil
}

// pgKeyFilter renders "fields IN keys" for PostgreSQL, each column
// prefixed with alias ("m." or "").
func pgKeyFilter(p *pgArgs, ti *tableInfo, alias string, fields []string, keys [][]any) (string, error) {
	cols, err := ti.keyColumns(fields)
	if err != nil {
		return "", err
	}
	if len(cols) == 1 {
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = k[0]
		}
		arr, typ, cast, err := pgArray(cols[0], vals)
		if err != nil {
			return "", err
		}
		col := alias + quote(cols[0].Name)
		if cast != "" {
			return col + " = ANY(" + p.bind(arr, typ) + "::" + cast + "[])", nil
		}
		return col + " = ANY(" + p.bind(arr, typ) + ")", nil
	}
	from, sel, err := pgRows(p, cols, keys, "k")
	if err != nil {
		return "", err
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = alias + quote(c.Name)
	}
	return "(" + strings.Join(names, ", ") + ") IN (SELECT " + sel + " FROM " + from + ")", nil
}

// pgWrite renders one write; an empty write renders "".
func (t *Tenant) pgWrite(p *pgArgs, w syncdata.Write) (string, error) {
	ti, err := t.info(w.Model)
	if err != nil {
		return "", err
	}
	switch {
	case len(w.Delete) > 0:
		where, err := pgKeyFilter(p, ti, "", ti.model.PrimaryKey, w.Delete)
		if err != nil {
			return "", err
		}
		return "DELETE FROM " + ti.name + " WHERE " + where, nil
	case len(w.Upsert) > 0:
		rows := make([][]any, len(w.Upsert))
		for i, r := range w.Upsert {
			row := make([]any, len(ti.table.Columns))
			for j, c := range ti.table.Columns {
				row[j] = r[c.Field]
			}
			rows[i] = row
		}
		from, sel, err := pgRows(p, ti.table.Columns, rows, "u")
		if err != nil {
			return "", fmt.Errorf("tenant %s: %s: %w", t.id, w.Model, err)
		}
		return "INSERT INTO " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") SELECT " + sel + " FROM " + from + ti.onConflict, nil
	}
	return "", nil
}

// pgChangelog inserts entries and deletes the entries they supersede (the
// previous entry of each one's record in its scope, through the index
// _changelog_scope_record), the two statements sharing their arrays.
// Combined in one statement, the delete sees the changelog as it was
// before the statement, so it never meets the new entries.
func (t *Tenant) pgChangelog(p *pgArgs, entries []changelog.Entry) (insert, del string) {
	n := len(entries)
	ids, models, keys, ops, scopes, events := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created := make([]time.Time, n)
	for i, e := range entries {
		ids[i], models[i], keys[i], ops[i], scopes[i], events[i] = e.ID, e.Model, string(e.KeyPath), string(e.Operation), e.ScopeKey, e.OutboxEventID
		created[i] = e.CreatedAt.UTC()
	}
	id, model, key, scope := p.bind(ids, "text[]"), p.bind(models, "text[]"), p.bind(keys, "text[]"), p.bind(scopes, "text[]")
	return "INSERT INTO " + t.prefix + `"_changelog" (id, model, key_path, operation, scope_key, outbox_event_id, created_at) SELECT * FROM unnest(` +
			id + ", " + model + ", " + key + ", " + p.bind(ops, "text[]") + ", " +
			scope + ", " + p.bind(events, "text[]") + ", " + p.bind(created, "timestamptz[]") + ")",
		"DELETE FROM " + t.prefix + `"_changelog" c USING unnest(` + id + ", " + model + ", " + key + ", " + scope + ") AS n(i, m, k, s)" +
			" WHERE c.scope_key = n.s AND c.model = n.m AND c.key_path = n.k AND c.id < n.i"
}

// pgLedger records the applied events of a subject.
func (t *Tenant) pgLedger(p *pgArgs, a syncdata.Applied) string {
	events, entries := make([]string, len(a.Events)), make([]string, len(a.Events))
	for i, e := range a.Events {
		events[i], entries[i] = e.EventID, e.ChangelogID
	}
	return "INSERT INTO " + t.prefix + `"_applied_events" (subject, event_id, changelog_id, applied_at) SELECT ` +
		p.bind(a.Subject, "text") + ", e, c, now() FROM unnest(" + p.bind(events, "text[]") + ", " + p.bind(entries, "text[]") + ") AS l(e, c)"
}

// pgHistory appends a batch's entries to the tenant's full history.
func (t *Tenant) pgHistory(p *pgArgs, a syncdata.Applied) string {
	n := len(a.History)
	ids, models, keys, ops, scopes, events := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	recs, created := make([]*string, n), make([]time.Time, n)
	for i, h := range a.History {
		ids[i], models[i], keys[i], ops[i], scopes[i], events[i] = h.ID, h.Model, string(h.KeyPath), string(h.Operation), h.ScopeKey, h.OutboxEventID
		if h.Record != nil {
			r := string(h.Record)
			recs[i] = &r
		}
		created[i] = h.CreatedAt.UTC()
	}
	return "INSERT INTO " + t.prefix + `"_history" (id, subject, model, key_path, operation, scope_key, outbox_event_id, record, created_at) SELECT i, ` +
		p.bind(a.Subject, "text") + ", m, k, o, s, e, r::jsonb, c FROM unnest(" + p.bind(ids, "text[]") + ", " + p.bind(models, "text[]") + ", " +
		p.bind(keys, "text[]") + ", " + p.bind(ops, "text[]") + ", " + p.bind(scopes, "text[]") + ", " + p.bind(events, "text[]") + ", " +
		p.bind(recs, "text[]") + ", " + p.bind(created, "timestamptz[]") + ") AS h(i, m, k, o, s, e, r, c)"
}

// pgHeads moves the scope heads and, in the same statement, NOTIFYs other
// processes (delivered on commit, one per touched scope, see Store.Listen).
func (t *Tenant) pgHeads(p *pgArgs, heads map[string]string) string {
	scopes := sortedKeys(heads)
	lasts := make([]string, len(scopes))
	for i, s := range scopes {
		lasts[i] = heads[s]
	}
	return "WITH h AS (INSERT INTO " + t.prefix + `"_scope_heads" (scope_key, last_id) SELECT * FROM unnest(` +
		p.bind(scopes, "text[]") + ", " + p.bind(lasts, "text[]") + ") ON CONFLICT (scope_key) DO UPDATE SET last_id = EXCLUDED.last_id" +
		" RETURNING scope_key, last_id) SELECT pg_notify('" + NotifyChannel + "', " + p.bind(t.id, "text") + " || '|' || scope_key || '|' || last_id) FROM h"
}

// pgApply is Apply on PostgreSQL: it queues the statements, which go out
// with COMMIT (pgTx). Consecutive upserts go out as one
// statement, each delete as one of its own (a cascade does not see rows
// written by the same statement), and the changelog entries and scope
// heads, with the ledger rows of the applied events, join the last of
// these statements (they touch no record).
func (x *Tx) pgApply(ctx context.Context, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
	var runs [][]syncdata.Write
	for _, w := range writes {
		switch {
		case len(w.Delete) == 0 && len(w.Upsert) == 0:
		case len(w.Delete) == 0 && len(runs) > 0 && len(runs[len(runs)-1][0].Delete) == 0:
			runs[len(runs)-1] = append(runs[len(runs)-1], w)
		default:
			runs = append(runs, []syncdata.Write{w})
		}
	}
	if len(runs) == 0 {
		runs = [][]syncdata.Write{nil}
	}
	for i, run := range runs {
		p := &pgArgs{}
		var parts []string
		for _, w := range run {
			q, err := x.t.pgWrite(p, w)
			if err != nil {
				return err
			}
			parts = append(parts, q)
		}
		if i == len(runs)-1 && len(applied.Events) > 0 {
			parts = append(parts, x.t.pgLedger(p, applied))
		}
		if i == len(runs)-1 && len(applied.History) > 0 {
			parts = append(parts, x.t.pgHistory(p, applied))
		}
		if i == len(runs)-1 && len(entries) > 0 {
			ins, del := x.t.pgChangelog(p, entries)
			parts = append(parts, del, ins)
			if len(heads) > 0 {
				parts = append(parts, x.t.pgHeads(p, heads))
			}
		}
		if len(parts) == 0 {
			continue
		}
		x.pg.queue(pgStmt{what: "write", sql: combine(parts), args: p.args})
	}
	return nil
}

// combine makes one statement of parts: each but the last becomes a
// data-modifying WITH subquery, which PostgreSQL runs to completion though
// nothing reads it.
func combine(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	var b strings.Builder
	b.WriteString("WITH ")
	for i, q := range parts[:len(parts)-1] {
		b.WriteString("w" + strconv.Itoa(i) + " AS (" + q + "), ")
	}
	last := parts[len(parts)-1]
	if rest, ok := strings.CutPrefix(last, "WITH "); ok {
		b.WriteString(rest)
	} else {
		b.WriteString("w AS (" + last + ") SELECT 1")
	}
	return b.String()
}

// pgLockScopes is LockScopes on PostgreSQL; rows are inserted (and so
// locked) in the array's order, which is sorted. The queued BEGIN goes
// with it when the transaction read nothing before.
func (x *Tx) pgLockScopes(ctx context.Context, scopes []string) (map[string]string, error) {
	p := &pgArgs{}
	q := "INSERT INTO " + x.t.prefix + `"_scope_heads" (scope_key, last_id) SELECT s, '' FROM unnest(` + p.bind(scopes, "text[]") +
		") WITH ORDINALITY AS u(s, n) ORDER BY n ON CONFLICT (scope_key) DO UPDATE SET scope_key = EXCLUDED.scope_key RETURNING scope_key, last_id"
	out := make(map[string]string, len(scopes))
	err := x.pg.read(ctx, pgStmt{what: "lock scopes", sql: q, args: p.args, scan: pairInto(out)})
	return out, err
}

// pgQuery runs a read built with p on db (a bun.Tx or *bun.DB).
func pgQuery(ctx context.Context, db bun.IConn, p *pgArgs, q string) (*sql.Rows, error) {
	args := p.all()
	switch c := db.(type) {
	case bun.Tx:
		return c.Tx.QueryContext(ctx, q, args...)
	case *bun.DB:
		return c.DB.QueryContext(ctx, q, args...)
	}
	return nil, fmt.Errorf("store: unexpected connection %T", db)
}

// postgres is the PostgreSQL backend: every tenant's tables live in a
// schema t_<id> of the platform database, and commits reach other server
// processes through NOTIFY (see Store.Listen).
type postgres struct {
	platform *bun.DB
	// pool holds the connections: write transactions use them natively
	// (pgTx), bun and everything else through database/sql on top.
	pool *pgxpool.Pool
	dsn  string // for the listening connection
	// replicas, when set, serve pull pages (AddReplicas).
	replicas *replicaSet
}

// maxConns bounds the connections to PostgreSQL of one server process.
const maxConns = 32

// openPostgres connects to the PostgreSQL database at dsn.
func openPostgres(ctx context.Context, dsn string) (*bun.DB, *postgres, error) {
	cfg, err := pgPoolConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres URL %s: %w", redact(dsn), err)
	}
	// database/sql keeps no idle connections of its own: they are the
	// pool's, so that native and database/sql users share maxConns.
	sqldb := sql.OpenDB(retryConnector{stdlib.GetPoolConnector(pool)})
	sqldb.SetMaxIdleConns(0)
	db := bun.NewDB(sqldb, pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		pool.Close()
		return nil, nil, fmt.Errorf("%w: postgres: %v", syncdata.ErrUnavailable, err)
	}
	return db, &postgres{platform: db, pool: pool, dsn: dsn}, nil
}

// pgPoolConfig is the configuration of a pool of connections to dsn (the
// primary's or a replica's).
func pgPoolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres URL %s: %w", redact(dsn), err)
	}
	// Every statement of push and pull reads through an index (keys,
	// foreign keys, (scope_key, id)). A generic plan, which the prepared
	// statements of this file keep after a few executions, is made once: when
	// that happens while a new tenant's tables are nearly empty, a scan of
	// the whole table looks cheapest and stays in use as the table grows.
	// Seq scans are therefore priced out (they still run where no index
	// applies).
	cc := cfg.ConnConfig
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	if _, set := cc.RuntimeParams["enable_seqscan"]; !set {
		cc.RuntimeParams["enable_seqscan"] = "off"
	}
	// Native statements (pgTx) are prepared once per connection and
	// cached; statements through database/sql run in the simple protocol
	// unless they ask otherwise (retryConn).
	cc.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	cfg.MaxConns = maxConns
	cfg.MaxConnIdleTime = 5 * time.Minute
	return cfg, nil
}

func (p *postgres) tenantDB(string) (*bun.DB, error) { return p.platform, nil }

// tenantWriter: writes share the pool, side by side.
func (p *postgres) tenantWriter(string) (*writer, error) { return &writer{db: p.platform}, nil }

// tenantPrefix: a tenant's tables live in its schema (schemaName).
func (*postgres) tenantPrefix(id string) string { return quote(schemaName(id)) + "." }

// close: the pool is closed by Store.Close, after the platform's *sql.DB
// that borrows from it.
func (*postgres) close() []error { return nil }

func (*postgres) columnType(c Column) string {
	if c.List {
		return "jsonb"
	}
	switch c.Type {
	case schema.Int, schema.BigInt:
		return "bigint"
	case schema.Float:
		return "double precision"
	case schema.Boolean:
		return "boolean"
	case schema.DateTime:
		return "timestamptz(3)"
	case schema.JSON:
		return "jsonb"
	case schema.Bytes:
		return "bytea"
	case schema.Decimal:
		return "numeric"
	}
	return "text" // String and enums
}

func (*postgres) timestampType() string { return "timestamptz(3)" }
func (*postgres) sortedText() string    { return `text COLLATE "C"` }
func (*postgres) jsonType() string      { return "jsonb" }
func (*postgres) skipLocked() string    { return " FOR UPDATE SKIP LOCKED" }

func (*postgres) literal(c Column, now time.Time) string {
	if isNow(c) {
		return "now()"
	}
	return jsonLiteral(c, "TRUE", "FALSE", func(b []byte) string { return `'\x` + hex.EncodeToString(b) + "'::bytea" })
}

func (*postgres) encode(typ string, v any) any {
	switch x := v.(type) {
	case json.RawMessage:
		return string(x)
	case []any:
		return encodeList(typ, x)
	}
	return v
}

func (*postgres) selectExpr(q string, c Column) string {
	if c.List || c.Type == schema.JSON || c.Type == schema.Decimal {
		return q + "::text"
	}
	return q
}

func (*postgres) nowSQL() string { return "now()" }

func (*postgres) scanTarget(c Column) (any, func() (any, error)) {
	if !c.List {
		switch c.Type {
		case schema.Bytes:
			var b []byte
			return &b, func() (any, error) {
				if b == nil {
					return nil, nil
				}
				return append([]byte{}, b...), nil
			}
		case schema.DateTime:
			var t sql.NullTime
			return &t, func() (any, error) { return nullable(t.Valid, t.Time.UTC()), nil }
		}
	}
	return scanValue(c)
}

func (*postgres) keyPathElem(k int, integer bool) string {
	elem := "(c.key_path::jsonb->>" + strconv.Itoa(k) + ")"
	if integer {
		elem += "::bigint"
	}
	return elem
}

func (*postgres) rowID() string { return "ctid" }

func (*postgres) position(col, needle string) string {
	return "strpos(" + col + ", " + stringLiteral(needle) + ")"
}

// schemaDDL creates the tenant's schema.
func (*postgres) schemaDDL(t *Tenant) []string {
	return []string{"CREATE SCHEMA IF NOT EXISTS " + quote(schemaName(t.id))}
}

// lockMigration takes an advisory lock keyed by the tenant, as a session
// lock taken before the transaction begins: a transaction that waited for
// a lock inside itself could still see the catalog as it was when it
// began, and trip over the tables the previous holder just created.
func (*postgres) lockMigration(ctx context.Context, conn bun.Conn, t *Tenant) (func(), error) {
	sum := sha256.Sum256([]byte("syncplane tenant " + t.id))
	key := int64(binary.BigEndian.Uint64(sum[:]))
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", key); err != nil {
		return nil, fmt.Errorf("tenant %s: migration lock: %w", t.id, classify(err))
	}
	return func() {
		conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", key) //nolint:errcheck // the lock also ends with the session
	}, nil
}

func (*postgres) metaExistsSQL(t *Tenant) string {
	return "SELECT to_regclass('" + strings.ReplaceAll(t.prefix, "'", "''") + `"_meta"') IS NOT NULL`
}

// dropOutboxUnique: PostgreSQL drops the constraint in place.
func (*postgres) dropOutboxUnique(_ context.Context, _ bun.Tx, t *Tenant) ([]string, error) {
	return []string{"ALTER TABLE " + t.prefix + `"_changelog" DROP CONSTRAINT IF EXISTS "_changelog_outbox_event_id_key"`}, nil
}

func (*postgres) apply(ctx context.Context, x *Tx, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error {
	return x.pgApply(ctx, writes, entries, heads, applied)
}

func (*postgres) lockScopes(ctx context.Context, x *Tx, scopes []string) (map[string]string, error) {
	return x.pgLockScopes(ctx, scopes)
}

func (*postgres) queryKeys(ctx context.Context, _ *Tenant, db bun.IConn, q string, ti *tableInfo, alias string, fields []string, keys [][]any) (*sql.Rows, error) {
	p := &pgArgs{}
	where, err := pgKeyFilter(p, ti, alias, fields, keys)
	if err != nil {
		return nil, err
	}
	return pgQuery(ctx, db, p, q+" WHERE "+where)
}

// appliedEvents looks each id up on its own, by the whole primary key
// (subject, event_id). The plain "subject = $1 AND event_id = ANY($2)"
// was kept, as a generic plan made while the ledger was nearly empty, as a
// scan of the subject's every row with event_id as a filter: a push then
// read the whole ledger of its subject (30 ms a batch at 30,000 events).
func (*postgres) appliedEvents(ctx context.Context, t *Tenant, db bun.IConn, subject string, ids []string) (*sql.Rows, error) {
	p := &pgArgs{}
	return pgQuery(ctx, db, p, pgAppliedEventsSQL(t, p, subject, ids))
}

func pgAppliedEventsSQL(t *Tenant, p *pgArgs, subject string, ids []string) string {
	return "SELECT id, c FROM (SELECT e.id, (SELECT l.changelog_id FROM " + t.prefix + `"_applied_events" l` +
		" WHERE l.subject = " + p.bind(subject, "text") + ` AND l.event_id = e.id COLLATE "C") AS c FROM unnest(` +
		p.bind(ids, "text[]") + ") AS e(id)) AS a WHERE c IS NOT NULL"
}

// entriesSQL: $1 are the scopes, $2 their cursors (in the same order) and
// $3 the limit: a LATERAL subquery per scope takes its first entries.
func (*postgres) entriesSQL(tbl string) string {
	return "SELECT c.id, c.model, c.key_path, c.operation, c.scope_key, c.outbox_event_id, c.created_at" +
		" FROM unnest($1::text[], $2::text[]) AS s(scope, after) CROSS JOIN LATERAL (SELECT " + entryColumns +
		" FROM " + tbl + " WHERE scope_key = s.scope AND id > s.after ORDER BY id LIMIT $3) AS c ORDER BY c.id LIMIT $3"
}

func (*postgres) queryEntries(ctx context.Context, t *Tenant, q string, _ *sql.Stmt, after map[string]string, limit int) (*sql.Rows, error) {
	scopes, afters := cursorArrays(after)
	return t.db.DB.QueryContext(ctx, q, prepared, scopes, afters, int64(limit))
}

// pageRows reads the page through the connection's pgx API rather than
// database/sql, which would turn every column of every row into a Go
// value first (a string, a boxed number: most of a page's allocations):
// the rows come in binary format and each value is read where it lies
// (pgRow). A connection that is not pgx's is read through database/sql.
// As for the statements database/sql runs (see retryConnector), a pooled
// connection found dead before any row was read is replaced, and the
// statement runs again on another.
func (p *postgres) pageRows(ctx context.Context, t *Tenant, pq *pageQuery, after map[string]string, limit int, row func(pageRow) (bool, error)) error {
	scopes, afters := cursorArrays(after)
	if p.replicas != nil {
		if done, err := p.replicas.pageRows(ctx, p.pool, t, pq, scopes, afters, limit, row); done {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		conn, err := t.db.DB.Conn(ctx)
		if err != nil {
			return classify(err)
		}
		read, viaSQL := false, false
		err = conn.Raw(func(dc any) error {
			c := pgxConn(dc)
			if c == nil || !pgxPages.Load() {
				viaSQL = true
				return nil
			}
			rows, err := c.Query(ctx, pq.sql, prepared, pq.formats(), scopes, afters, int64(limit))
			read, err = readPgPage(rows, err, pq, row)
			if err != nil && !read && c.IsClosed() && ctx.Err() == nil {
				return driver.ErrBadConn // database/sql discards the connection
			}
			return err
		})
		if viaSQL {
			rows, qerr := conn.QueryContext(ctx, pq.sql, prepared, scopes, afters, int64(limit))
			if qerr != nil {
				conn.Close()
				return classify(qerr)
			}
			err = scanPage(rows, newSQLRow(pq.kinds, false), row)
		}
		conn.Close()
		if errors.Is(err, driver.ErrBadConn) && attempt < 2 {
			continue
		}
		return classify(err)
	}
}

// formats asks for every column of the page statement in binary.
func (pq *pageQuery) formats() pgx.QueryResultFormats {
	f := make(pgx.QueryResultFormats, len(pq.kinds))
	for i := range f {
		f[i] = pgx.BinaryFormatCode
	}
	return f
}

// readPgPage hands the rows of the page statement (the result of a
// pgx query, with its error) to row; read reports whether any row was
// handed over, after which the page cannot be read again elsewhere.
func readPgPage(rows pgx.Rows, err error, pq *pageQuery, row func(pageRow) (bool, error)) (read bool, _ error) {
	if err != nil {
		return false, err
	}
	r := &pgRow{}
	for rows.Next() {
		if !read {
			if err = checkPageColumns(rows.FieldDescriptions(), pq.kinds); err != nil {
				break
			}
		}
		read, r.vals = true, rows.RawValues()
		var more bool
		if more, err = row(r); !more {
			break
		}
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	return read, err
}

// pgxConn is the pgx connection of a database/sql driver connection, nil
// if it has none.
func pgxConn(dc any) *pgx.Conn {
	switch c := dc.(type) {
	case *retryConn:
		return c.Conn.Conn()
	case interface{ Conn() *pgx.Conn }:
		return c.Conn()
	}
	return nil
}

// pgxPages: pages are read through pgx when the connection is pgx's
// (tests turn it off to read them through database/sql).
var pgxPages = func() *atomic.Bool { var b atomic.Bool; b.Store(true); return &b }()

// checkPageColumns checks that the page statement's columns have the types
// pgRow reads (the binary forms of text, bigint, double precision,
// boolean, timestamptz and bytea).
func checkPageColumns(fields []pgconn.FieldDescription, kinds []cellKind) error {
	if len(fields) != len(kinds) {
		return fmt.Errorf("page statement: %d columns, want %d", len(fields), len(kinds))
	}
	for i, f := range fields {
		var ok bool
		switch kinds[i] {
		case cellText:
			ok = f.DataTypeOID == pgtype.TextOID || f.DataTypeOID == pgtype.VarcharOID
		case cellInt:
			ok = f.DataTypeOID == pgtype.Int8OID
		case cellFloat:
			ok = f.DataTypeOID == pgtype.Float8OID
		case cellBool:
			ok = f.DataTypeOID == pgtype.BoolOID
		case cellTime:
			ok = f.DataTypeOID == pgtype.TimestamptzOID
		case cellBytes:
			ok = f.DataTypeOID == pgtype.ByteaOID
		}
		// Text reads the same in both formats (a pipelined batch, which
		// cannot ask for binary, gets text columns as text).
		if !ok || f.Format != pgx.BinaryFormatCode && (kinds[i] != cellText || f.Format != pgx.TextFormatCode) {
			return fmt.Errorf("page statement: column %s has type %d (format %d), not what it reads", f.Name, f.DataTypeOID, f.Format)
		}
	}
	return nil
}

// pgRow is a page row as pgx hands it over: the raw values, in binary
// format.
type pgRow struct{ vals [][]byte }

func (r *pgRow) null(i int) bool   { return r.vals[i] == nil }
func (r *pgRow) text(i int) []byte { return r.vals[i] }

func (r *pgRow) int(i int) (int64, error) {
	if v := r.vals[i]; len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, errors.New("bigint of a length other than 8")
}

func (r *pgRow) float(i int) (float64, error) {
	if v := r.vals[i]; len(v) == 8 {
		return math.Float64frombits(binary.BigEndian.Uint64(v)), nil
	}
	return 0, errors.New("double precision of a length other than 8")
}

func (r *pgRow) boolean(i int) (bool, error) {
	if v := r.vals[i]; len(v) == 1 {
		return v[0] != 0, nil
	}
	return false, errors.New("boolean of a length other than 1")
}

// pgEpoch is PostgreSQL's timestamp origin (2000-01-01 UTC) in Unix
// microseconds.
const pgEpoch = 946684800 * 1000000

// time reads a timestamptz: microseconds since pgEpoch.
func (r *pgRow) time(i int) (time.Time, error) {
	v := r.vals[i]
	if len(v) != 8 {
		return time.Time{}, errors.New("timestamptz of a length other than 8")
	}
	us := int64(binary.BigEndian.Uint64(v))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, errors.New("stored DateTime is infinite")
	}
	return time.UnixMicro(us + pgEpoch).UTC(), nil
}

func (r *pgRow) bytes(i int) ([]byte, error) { return r.vals[i], nil }

// changes: one statement whatever the number of scopes (entriesSQL).
func (p *postgres) changes(ctx context.Context, t *Tenant, after map[string]string, limit int) (*sql.Rows, error) {
	return p.queryEntries(ctx, t, t.entriesSQL(), nil, after, limit)
}

func (*postgres) constraint(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			if pg.TableName == "_applied_events" {
				return syncdata.ErrDuplicateEvent
			}
			return &syncdata.ConstraintError{Kind: "unique", Detail: pg.Detail}
		case "23503":
			return &syncdata.ConstraintError{Kind: "foreign key", Detail: pg.Detail}
		}
	}
	return classify(err)
}
