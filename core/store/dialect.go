package store

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/syncplane/syncplane/core/schema"
)

// dialect is everything that differs between PostgreSQL and SQLite.
type dialect interface {
	name() string
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
	// encode turns a validated value into a query argument.
	encode(typ string, v any) any
	// selectExpr is how a column is selected so that decode can scan it.
	selectExpr(quoted string, c Column) string
	// canAddForeignKey reports whether ALTER TABLE can add a relation column.
	addColumnFK() bool
}

const isoMillis = "2006-01-02T15:04:05.000Z"

type postgres struct{}

func (postgres) name() string { return "postgres" }

func (postgres) columnType(c Column) string {
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

func (postgres) timestampType() string { return "timestamptz(3)" }
func (postgres) sortedText() string    { return `text COLLATE "C"` }
func (postgres) jsonType() string      { return "jsonb" }
func (postgres) skipLocked() string    { return " FOR UPDATE SKIP LOCKED" }

func (postgres) literal(c Column, now time.Time) string {
	if isNow(c) {
		return "now()"
	}
	return jsonLiteral(c, "TRUE", "FALSE", func(b []byte) string { return `'\x` + hex.EncodeToString(b) + "'::bytea" })
}

func (postgres) encode(typ string, v any) any {
	switch x := v.(type) {
	case json.RawMessage:
		return string(x)
	case []any:
		return encodeList(typ, x)
	}
	return v
}

func (postgres) selectExpr(q string, c Column) string {
	if c.List || c.Type == schema.JSON || c.Type == schema.Decimal {
		return q + "::text"
	}
	return q
}

func (postgres) addColumnFK() bool { return true }

type sqlite struct{}

func (sqlite) name() string { return "sqlite" }

func (sqlite) columnType(c Column) string {
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

func (sqlite) timestampType() string { return "TEXT" }
func (sqlite) sortedText() string    { return "TEXT" }
func (sqlite) jsonType() string      { return "TEXT" }
func (sqlite) skipLocked() string    { return "" }

// literal: SQLite's ADD COLUMN takes only constant defaults, so now() is
// the time of the migration.
func (sqlite) literal(c Column, now time.Time) string {
	if isNow(c) {
		return "'" + now.UTC().Format(isoMillis) + "'"
	}
	return jsonLiteral(c, "1", "0", func(b []byte) string { return "X'" + hex.EncodeToString(b) + "'" })
}

func (sqlite) encode(typ string, v any) any {
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
func (sqlite) selectExpr(q string, c Column) string {
	if c.Type == schema.Bytes && !c.List {
		return "CASE WHEN " + q + " IS NULL THEN NULL ELSE hex(" + q + ") END"
	}
	return q
}

func (sqlite) addColumnFK() bool { return true }

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

func newRecordScanner(d dialect, cols []Column, scopeCols int) *recordScanner {
	r := &recordScanner{cols: cols, dest: make([]any, len(cols), len(cols)+scopeCols),
		decode: make([]func() (any, error), len(cols)), scopes: make([]sql.NullString, scopeCols)}
	for i, c := range cols {
		r.dest[i], r.decode[i] = scanTarget(d, c)
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

// scanTarget returns a destination for one column and a function that turns
// the scanned value into a record value.
func scanTarget(d dialect, c Column) (any, func() (any, error)) {
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
	case schema.Bytes:
		if d.name() == "sqlite" {
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
		}
		var b []byte
		return &b, func() (any, error) {
			if b == nil {
				return nil, nil
			}
			return append([]byte{}, b...), nil
		}
	case schema.DateTime:
		if d.name() == "postgres" {
			var t sql.NullTime
			return &t, func() (any, error) { return nullable(t.Valid, t.Time.UTC()), nil }
		}
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
