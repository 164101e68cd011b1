package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// backend is everything that differs between PostgreSQL (pg.go) and
// SQLite (sqlite.go): Open chooses one, and every tenant of the store
// uses it. Nothing else in this package asks which database it runs on.
type backend interface {
	// tenantDB returns the database that holds a tenant's tables, and
	// tenantPrefix what qualifies their names (`"t_acme".` or "").
	tenantDB(id string) (*bun.DB, error)
	tenantPrefix(id string) string
	// tenantWriter returns where a tenant's writes go.
	tenantWriter(id string) (*writer, error)
	// close closes the databases tenantDB opened (not the platform's).
	close() []error
	// listen delivers other processes' commits (see Store.Listen).
	listen(ctx context.Context, l Listener) error

	// columnType is the SQL type of a column.
	columnType(c Column) string
	// timestampType is the type of the changelog's created_at.
	timestampType() string
	// sortedText is a text type that compares byte-wise.
	sortedText() string
	// jsonType is the type of a JSON document column.
	jsonType() string
	// skipLocked ends a SELECT that locks the rows it reads, skipping
	// those another transaction holds ("" where a writer holds the whole
	// database).
	skipLocked() string
	// literal renders a column default as SQL for ADD COLUMN.
	literal(c Column, now time.Time) string
	// nowSQL is the SQL of the current time as timestamps are stored.
	nowSQL() string
	// encode turns a validated value into a query argument.
	encode(typ string, v any) any
	// selectExpr is how a column is selected so that scanTarget can scan it.
	selectExpr(quoted string, c Column) string
	// scanTarget returns a Scan destination for one column and a function
	// that turns the scanned value into a record value.
	scanTarget(c Column) (any, func() (any, error))
	// keyPathElem is the SQL of element k of a changelog entry's key path
	// (c.key_path), as text or, when integer, as a bigint.
	keyPathElem(k int, integer bool) string
	// rowID names a row's physical address, for batched deletes.
	rowID() string
	// position is the SQL of the 1-based position of needle (a literal) in
	// the text column col, 0 when it is not there.
	position(col, needle string) string

	// schemaDDL creates what holds a tenant's tables before systemDDL runs.
	schemaDDL(t *Tenant) []string
	// lockMigration serializes migrations of one tenant across processes,
	// on conn before its transaction begins; unlock ends the lock.
	lockMigration(ctx context.Context, conn bun.Conn, t *Tenant) (unlock func(), err error)
	// metaExistsSQL tells whether the tenant's _meta table exists.
	metaExistsSQL(t *Tenant) string
	// dropOutboxUnique renders what drops the unique constraint of a
	// system version 1 changelog on outbox_event_id (see upgradeSystem).
	dropOutboxUnique(ctx context.Context, tx bun.Tx, t *Tenant) ([]string, error)

	// apply is Tx.Apply.
	apply(ctx context.Context, x *Tx, writes []syncdata.Write, entries []changelog.Entry, heads map[string]string, applied syncdata.Applied) error
	// lockScopes is Tx.LockScopes' statement: it returns each scope's
	// last id.
	lockScopes(ctx context.Context, x *Tx, scopes []string) (map[string]string, error)
	// queryKeys runs q (a SELECT of ti's records, aliased alias) restricted
	// to the records whose fields equal one of keys.
	queryKeys(ctx context.Context, t *Tenant, db bun.IConn, q string, ti *tableInfo, alias string, fields []string, keys [][]any) (*sql.Rows, error)
	// appliedEvents reads the ledger rows (event_id, changelog_id) of
	// subject's events ids.
	appliedEvents(ctx context.Context, t *Tenant, db bun.IConn, subject string, ids []string) (*sql.Rows, error)
	// entriesSQL reads the changelog entries of a page (see
	// Tenant.entriesSQL), and queryEntries runs it, or a statement built
	// on it, for after (stmt, when set, is q prepared).
	entriesSQL(tbl string) string
	queryEntries(ctx context.Context, t *Tenant, q string, stmt *sql.Stmt, after map[string]string, limit int) (*sql.Rows, error)
	// pageRows runs the page statement pq for after and limit and hands
	// row its rows, in order, until row returns false.
	pageRows(ctx context.Context, t *Tenant, pq *pageQuery, after map[string]string, limit int, row func(pageRow) (bool, error)) error
	// changes reads the changelog entries of Tenant.ChangesAcross.
	changes(ctx context.Context, t *Tenant, after map[string]string, limit int) (*sql.Rows, error)
	// constraint turns the driver's constraint errors into
	// *syncdata.ConstraintError (or syncdata.ErrDuplicateEvent for the
	// ledger of applied events) and leaves other errors to classify.
	constraint(err error) error
}

const isoMillis = "2006-01-02T15:04:05.000Z"

// isNow reports whether a column's default is now(). Only a DateTime
// default can be: for a String, "now()" is a literal.
func isNow(c Column) bool {
	return c.Type == schema.DateTime && !c.List && string(c.Default) == `"now()"`
}

// jsonLiteral renders a literal @default stored as JSON in the form encode
// gives values of the column: booleans as t or f, Bytes through bytea,
// DateTime as ISO-8601 UTC text, Json and lists as their JSON text, and
// numbers exactly as written (a BigInt beyond 2^53 included).
func jsonLiteral(c Column, t, f string, bytea func([]byte) string) string {
	dec := json.NewDecoder(bytes.NewReader(c.Default))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || v == nil {
		return "NULL"
	}
	if c.List || c.Type == schema.JSON {
		if list, ok := v.([]any); ok && c.List {
			for i, el := range list {
				if s, ok := el.(string); ok && c.Type == schema.DateTime {
					if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
						list[i] = tm.UTC().Format(isoMillis)
					}
				}
			}
			b, err := json.Marshal(list)
			if err != nil {
				return "NULL"
			}
			return stringLiteral(string(b))
		}
		return stringLiteral(string(c.Default))
	}
	switch x := v.(type) {
	case bool:
		if x {
			return t
		}
		return f
	case json.Number:
		return x.String()
	case string:
		switch c.Type {
		case schema.Bytes:
			b, err := base64.StdEncoding.DecodeString(x)
			if err != nil {
				return "NULL"
			}
			return bytea(b)
		case schema.DateTime:
			if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return stringLiteral(tm.UTC().Format(isoMillis))
			}
		}
		return stringLiteral(x)
	}
	return "NULL"
}

func stringLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// encodeList stores a scalar list as JSON text, with DateTime and Bytes in
// their wire form.
func encodeList(typ string, list []any) string {
	out := make([]any, len(list))
	for i, v := range list {
		switch x := v.(type) {
		case time.Time:
			out[i] = x.UTC().Format(isoMillis)
		case []byte:
			out[i] = base64.StdEncoding.EncodeToString(x)
		default:
			out[i] = x
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// recordScanner scans the columns of one table, and optionally scope
// columns after them, into records: dest are the Scan destinations of
// those columns, read turns what was scanned into a record.
type recordScanner struct {
	cols   []Column
	dest   []any
	decode []func() (any, error)
	scopes []sql.NullString
}

func newRecordScanner(d backend, cols []Column, scopeCols int) *recordScanner {
	r := &recordScanner{cols: cols, dest: make([]any, len(cols), len(cols)+scopeCols),
		decode: make([]func() (any, error), len(cols)), scopes: make([]sql.NullString, scopeCols)}
	for i, c := range cols {
		r.dest[i], r.decode[i] = d.scanTarget(c)
	}
	for i := range r.scopes {
		r.dest = append(r.dest, &r.scopes[i])
	}
	return r
}

// read returns the record last scanned.
func (r *recordScanner) read() (schema.Record, error) {
	rec := make(schema.Record, len(r.cols))
	for i, c := range r.cols {
		v, err := r.decode[i]()
		if err != nil {
			return nil, err
		}
		rec[c.Field] = v
	}
	return rec, nil
}

// readScopes returns the scopes last scanned, without NULLs or duplicates.
func (r *recordScanner) readScopes() []string {
	var out []string
	for _, s := range r.scopes {
		if s.Valid && !slices.Contains(out, s.String) {
			out = append(out, s.String)
		}
	}
	return out
}

// scanValue returns a Scan destination for one column and a function that
// turns the scanned value into a record value, for the types both
// databases return alike (see backend.scanTarget).
func scanValue(c Column) (any, func() (any, error)) {
	if c.List {
		var s sql.NullString
		return &s, func() (any, error) {
			if !s.Valid {
				return nil, nil
			}
			return decodeList(c.Type, s.String)
		}
	}
	switch c.Type {
	case schema.Int, schema.BigInt:
		var n sql.NullInt64
		return &n, func() (any, error) { return nullable(n.Valid, n.Int64), nil }
	case schema.Float:
		var n sql.NullFloat64
		return &n, func() (any, error) { return nullable(n.Valid, n.Float64), nil }
	case schema.Boolean:
		var n sql.NullBool
		return &n, func() (any, error) { return nullable(n.Valid, n.Bool), nil }
	case schema.JSON:
		var s sql.NullString
		return &s, func() (any, error) {
			if !s.Valid {
				return nil, nil
			}
			if !json.Valid([]byte(s.String)) {
				return nil, fmt.Errorf("column %s: stored Json is not valid JSON", c.Name)
			}
			return json.RawMessage(s.String), nil
		}
	}
	var s sql.NullString
	return &s, func() (any, error) { return nullable(s.Valid, s.String), nil }
}

func nullable[T any](valid bool, v T) any {
	if !valid {
		return nil
	}
	return v
}

func decodeList(typ, s string) (any, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("stored list is not a JSON array: %w", err)
	}
	out := make([]any, len(raw))
	for i, r := range raw {
		var err error
		switch typ {
		case schema.Int, schema.BigInt:
			var n int64
			err = json.Unmarshal(r, &n)
			out[i] = n
		case schema.Float:
			var f float64
			err = json.Unmarshal(r, &f)
			out[i] = f
		case schema.Boolean:
			var b bool
			err = json.Unmarshal(r, &b)
			out[i] = b
		case schema.DateTime:
			var v string
			if err = json.Unmarshal(r, &v); err == nil {
				var t time.Time
				t, err = time.Parse(time.RFC3339Nano, v)
				out[i] = t.UTC()
			}
		case schema.Bytes:
			var b []byte
			err = json.Unmarshal(r, &b)
			out[i] = b
		case schema.JSON:
			out[i] = r
		default:
			var v string
			err = json.Unmarshal(r, &v)
			out[i] = v
		}
		if err != nil {
			return nil, fmt.Errorf("stored list element %d: %w", i, err)
		}
	}
	return out, nil
}

// quote quotes an SQL identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// cursorArrays are the scopes of after, sorted, and their cursors.
func cursorArrays(after map[string]string) (scopes, afters []string) {
	scopes = make([]string, 0, len(after))
	for sc := range after {
		scopes = append(scopes, sc)
	}
	slices.Sort(scopes)
	afters = make([]string, len(scopes))
	for i, sc := range scopes {
		afters[i] = after[sc]
	}
	return scopes, afters
}
