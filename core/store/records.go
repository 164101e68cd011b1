package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// Load returns the committed records of model whose fields equal one of keys.
func (t *Tenant) Load(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error) {
	return t.load(ctx, t.db, model, fields, keys)
}

// Changes returns at most limit changelog entries of scope after the id
// `after` ("" for the beginning), oldest first.
func (t *Tenant) Changes(ctx context.Context, scope, after string, limit int) ([]changelog.Entry, error) {
	return t.ChangesAcross(ctx, map[string]string{scope: after}, limit)
}

// ChangesAcross returns at most limit changelog entries of the given
// scopes, each after its own cursor id ("" for the beginning), merged in id
// order. Each scope reads through its (scope_key, id) index: on PostgreSQL
// one statement (entriesSQL), on SQLite one limited subquery per scope,
// merged by the database (backend.changes).
func (t *Tenant) ChangesAcross(ctx context.Context, after map[string]string, limit int) ([]changelog.Entry, error) {
	if len(after) == 0 {
		return nil, nil
	}
	rows, err := t.d.changes(ctx, t, after, limit)
	if err != nil {
		return nil, classify(err)
	}
	return scanEntries(rows, limit)
}

// scanEntries reads changelog entries (columns as in ChangesAcross) and
// closes rows.
func scanEntries(rows *sql.Rows, limit int) ([]changelog.Entry, error) {
	defer rows.Close()
	out := make([]changelog.Entry, 0, min(limit, 1000))
	for rows.Next() {
		var e changelog.Entry
		var keyPath string
		var created any
		if err := rows.Scan(&e.ID, &e.Model, &keyPath, &e.Operation, &e.ScopeKey, &e.OutboxEventID, &created); err != nil {
			return nil, classify(err)
		}
		e.KeyPath = json.RawMessage(keyPath)
		e.CreatedAt = entryTime(created)
		out = append(out, e)
	}
	return out, classify(rows.Err())
}

// entryTime reads a changelog entry's created_at as either driver returns it.
func entryTime(created any) time.Time {
	switch c := created.(type) {
	case time.Time:
		return c.UTC()
	case string:
		t, _ := time.Parse(time.RFC3339Nano, c)
		return t
	}
	return time.Time{}
}

// ScopesLike returns the scopes that have changelog entries and match one
// of the Casbin keyMatch patterns ("org-*": '*' matches any text).
func (t *Tenant) ScopesLike(ctx context.Context, patterns []string) ([]string, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	var conds []string
	args := make([]any, 0, len(patterns))
	for _, p := range patterns {
		conds = append(conds, `scope_key LIKE ? ESCAPE '\'`)
		esc := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(p)
		args = append(args, strings.ReplaceAll(esc, "*", "%"))
	}
	rows, err := t.db.QueryContext(ctx, "SELECT scope_key FROM "+t.prefix+`"_scope_heads" WHERE `+strings.Join(conds, " OR ")+" ORDER BY scope_key", args...)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var sc string
		if err := rows.Scan(&sc); err != nil {
			return nil, classify(err)
		}
		out = append(out, sc)
	}
	return out, classify(rows.Err())
}

// Tx is a write transaction of one tenant. On SQLite it holds the
// database's write lock from the start (BEGIN IMMEDIATE), and the turn to
// write of this process (see writer) until it ends or its context does.
// On PostgreSQL it runs over pgx's native interface and pipelines its
// statements (pgTx).
type Tx struct {
	t   *Tenant
	tx  bun.Tx // SQLite
	end func() // SQLite: from writer.begin; nil once called
	pg  *pgTx  // PostgreSQL
}

// Begin starts a write transaction: on SQLite see writer; on PostgreSQL
// nothing is sent yet, BEGIN goes with the first statement.
func (t *Tenant) Begin(ctx context.Context) (*Tx, error) {
	if pg, ok := t.d.(*postgres); ok {
		x, err := beginPG(ctx, pg.pool)
		if err != nil {
			return nil, err
		}
		return &Tx{t: t, pg: x}, nil
	}
	tx, end, err := t.w.begin(ctx)
	if err != nil {
		return nil, err
	}
	return &Tx{t: t, tx: tx, end: end}, nil
}

// ended gives up the turn to write, once.
func (x *Tx) ended() {
	if x.end != nil {
		x.end()
		x.end = nil
	}
}

// Commit commits the transaction. At most once per pruneEvery per tenant
// handle, it then prunes the ledger (see Tenant.SetLedgerRetention). On
// PostgreSQL the writes of Apply go out with the COMMIT, and their errors
// are Commit's.
func (x *Tx) Commit() error {
	if x.pg != nil {
		if err := x.pg.commit(); err != nil {
			return err
		}
	} else {
		err := x.tx.Commit()
		x.ended()
		if err != nil {
			return x.t.d.constraint(err)
		}
	}
	x.t.maybePrune()
	return nil
}

// Rollback aborts the transaction; after Commit it does nothing.
func (x *Tx) Rollback() error {
	if x.pg != nil {
		x.pg.rollback()
		return nil
	}
	err := x.tx.Rollback()
	x.ended()
	if err != nil && !errors.Is(err, sql.ErrTxDone) {
		return classify(err)
	}
	return nil
}

// Load is Tenant.Load inside the transaction.
func (x *Tx) Load(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error) {
	if x.pg != nil {
		recs, err := x.pgLoad(ctx, []syncdata.Lookup{{Model: model, Fields: fields, Keys: keys}})
		if err != nil {
			return nil, err
		}
		return recs[0], nil
	}
	return x.t.load(ctx, x.tx, model, fields, keys)
}

// LoadAll is Load for several lookups at once: one round trip on
// PostgreSQL.
func (x *Tx) LoadAll(ctx context.Context, lookups []syncdata.Lookup) ([][]schema.Record, error) {
	if x.pg != nil {
		return x.pgLoad(ctx, lookups)
	}
	out := make([][]schema.Record, len(lookups))
	for i, l := range lookups {
		recs, err := x.t.load(ctx, x.tx, l.Model, l.Fields, l.Keys)
		if err != nil {
			return nil, err
		}
		out[i] = recs
	}
	return out, nil
}

// AppliedEvents maps each of ids that subject applied before to the id of
// that event's changelog entry, from the _applied_events ledger. Another
// subject's events never match: an event id names one subject's event.
func (x *Tx) AppliedEvents(ctx context.Context, subject string, ids []string) (map[string]string, error) {
	return x.AppliedEventsLater(ctx, subject, ids)()
}

// AppliedEventsLater is AppliedEvents, answered by the function it
// returns. On PostgreSQL the lookup travels with the transaction's next
// round trip (a push sends it with its first loads): the function
// returns its answer, sending it alone if nothing was sent since.
func (x *Tx) AppliedEventsLater(ctx context.Context, subject string, ids []string) func() (map[string]string, error) {
	if len(ids) == 0 {
		return func() (map[string]string, error) { return map[string]string{}, nil }
	}
	if x.pg != nil {
		return x.pgAppliedEventsLater(ctx, subject, ids)
	}
	m, err := x.t.appliedEvents(ctx, x.tx, subject, ids)
	return func() (map[string]string, error) { return m, err }
}

// AppliedEvents is Tx.AppliedEvents outside a transaction.
func (t *Tenant) AppliedEvents(ctx context.Context, subject string, ids []string) (map[string]string, error) {
	return t.appliedEvents(ctx, t.db, subject, ids)
}

func (t *Tenant) appliedEvents(ctx context.Context, db bun.IConn, subject string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := t.d.appliedEvents(ctx, t, db, subject, ids)
	if err != nil {
		return nil, classify(err)
	}
	return stringPairs(rows, out)
}

// stringPairs reads rows of two text columns into out (first → second)
// and closes rows.
func stringPairs(rows *sql.Rows, out map[string]string) (map[string]string, error) {
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, classify(err)
		}
		out[k] = v
	}
	return out, classify(rows.Err())
}

// LastScopes maps each of the given key paths (canonical JSON text) of
// model to the scope of its newest changelog entry.
func (x *Tx) LastScopes(ctx context.Context, model string, keyPaths []string) (map[string]string, error) {
	if x.pg != nil {
		if len(keyPaths) == 0 {
			return map[string]string{}, nil
		}
		return x.pgLastScopes(ctx, model, keyPaths)
	}
	return x.t.lastScopes(ctx, x.tx, model, keyPaths)
}

// LastScopes is Tx.LastScopes outside a transaction.
func (t *Tenant) LastScopes(ctx context.Context, model string, keyPaths []string) (map[string]string, error) {
	return t.lastScopes(ctx, t.db, model, keyPaths)
}

func (t *Tenant) lastScopes(ctx context.Context, db bun.IConn, model string, keyPaths []string) (map[string]string, error) {
	out := map[string]string{}
	if len(keyPaths) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, "SELECT key_path, scope_key, id FROM "+t.prefix+`"_changelog" WHERE model = ? AND key_path IN (?) ORDER BY id`,
		model, bun.In(keyPaths))
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var kp, scope, id string
		if err := rows.Scan(&kp, &scope, &id); err != nil {
			return nil, classify(err)
		}
		out[kp] = scope // ordered by id: the newest wins
	}
	return out, classify(rows.Err())
}

// LockScopes locks the head rows of scopes (creating missing ones), in
// sorted order so that concurrent writers cannot deadlock, and returns each
// scope's last changelog id ("" for a new scope). The locks are held until
// the transaction ends: this is what orders changelog ids by commit.
func (x *Tx) LockScopes(ctx context.Context, scopes []string) (map[string]string, error) {
	if len(scopes) == 0 {
		return map[string]string{}, nil
	}
	return x.t.d.lockScopes(ctx, x, scopes)
}

// Upsert writes whole records of model, inserting or replacing by primary key.
func (x *Tx) Upsert(ctx context.Context, model string, recs []schema.Record) error {
	return x.Apply(ctx, []syncdata.Write{{Model: model, Upsert: recs}}, nil, nil, syncdata.Applied{})
}

// Delete removes the records of model with the given primary keys; the
// database applies each relation's onDelete to their children.
func (x *Tx) Delete(ctx context.Context, model string, keys [][]any) error {
	return x.Apply(ctx, []syncdata.Write{{Model: model, Delete: keys}}, nil, nil, syncdata.Applied{})
}

// AppendChangelog inserts entries and moves the locked scope heads to the
// given last ids; it records no applied event.
func (x *Tx) AppendChangelog(ctx context.Context, entries []changelog.Entry, heads map[string]string) error {
	return x.Apply(ctx, nil, entries, heads, syncdata.Applied{})
}

func (t *Tenant) info(model string) (*tableInfo, error) {
	ti, ok := t.tables[model]
	if !ok {
		return nil, fmt.Errorf("tenant %s: model %q has no table", t.id, model)
	}
	return ti, nil
}

// keyFilter renders "fields IN keys" for one or several columns, each
// column prefixed with alias (e.g. "m." or "").
func (t *Tenant) keyFilter(ti *tableInfo, alias string, fields []string, keys [][]any) (string, []any) {
	cols := make([]string, len(fields))
	types := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = alias + quote(f)
		types[i] = f
		if fd := ti.model.Field(f); fd != nil {
			cols[i] = alias + quote(fd.Column)
			types[i] = fd.Type
		}
	}
	args := make([]any, 0, len(keys)*len(fields))
	var b strings.Builder
	if len(fields) == 1 {
		b.WriteString(cols[0] + " IN (")
	} else {
		// A subquery, which SQLite looks up row by row in an index (it
		// scans the table for IN (VALUES …)).
		b.WriteString("(" + strings.Join(cols, ", ") + ") IN (SELECT * FROM (VALUES ")
	}
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		if len(fields) > 1 {
			b.WriteString("(")
		}
		for j := range fields {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("?")
			args = append(args, t.d.encode(types[j], k[j]))
		}
		if len(fields) > 1 {
			b.WriteString(")")
		}
	}
	b.WriteString(")")
	if len(fields) > 1 {
		b.WriteString(" AS v)") // PostgreSQL before 16 wants the alias
	}
	return b.String(), args
}

// Find returns at most limit committed records of model whose fields
// equal vals, in primary key order.
func (t *Tenant) Find(ctx context.Context, model string, fields []string, vals []any, limit int) ([]schema.Record, error) {
	return t.query(ctx, t.db, model, fields, [][]any{vals}, limit)
}

func (t *Tenant) load(ctx context.Context, db bun.IConn, model string, fields []string, keys [][]any) ([]schema.Record, error) {
	return t.query(ctx, db, model, fields, keys, 0)
}

// query reads the records of model whose fields equal one of keys (all
// records when fields is empty), at most limit of them (0: no limit).
func (t *Tenant) query(ctx context.Context, db bun.IConn, model string, fields []string, keys [][]any, limit int) ([]schema.Record, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ti, err := t.info(model)
	if err != nil {
		return nil, err
	}
	q, args := "SELECT "+ti.selects+" FROM "+ti.name, []any(nil)
	var rows *sql.Rows
	if len(fields) > 0 && limit == 0 {
		rows, err = t.d.queryKeys(ctx, t, db, q, ti, "", fields, keys)
	} else {
		if len(fields) > 0 {
			var where string
			where, args = t.keyFilter(ti, "", fields, keys)
			q += " WHERE " + where
		}
		if limit > 0 {
			q += " ORDER BY " + strings.Join(ti.pk, ", ") + " LIMIT ?"
			args = append(args, limit)
		}
		rows, err = db.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	sc := newRecordScanner(t.d, ti.table.Columns, 0)
	var out []schema.Record
	for rows.Next() {
		if err := rows.Scan(sc.dest...); err != nil {
			return nil, fmt.Errorf("tenant %s: read %s: %w", t.id, model, classify(err))
		}
		r, err := sc.read()
		if err != nil {
			return nil, fmt.Errorf("tenant %s: read %s: %w", t.id, model, err)
		}
		out = append(out, r)
	}
	return out, classify(rows.Err())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
