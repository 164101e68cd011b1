package store

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"time"
	"unsafe"

	"github.com/syncplane/syncplane/core/jsonscan"
	"github.com/syncplane/syncplane/core/schema"
)

// A pull page's records are written as JSON straight from the columns of
// the page statement (pageBlock.appendRecord), the same bytes
// schema.Model.AppendRecord writes of the record, without making a
// schema.Record of them: a row's values are read in place (pageRow), each
// appended in its wire form.

// cellKind is how a column of the page statement is read.
type cellKind uint8

const (
	cellText  cellKind = iota // text: ids, String, enums, Decimal, Json and lists (as text)
	cellInt                   // Int, BigInt
	cellFloat                 // Float
	cellBool                  // Boolean
	cellTime                  // DateTime, the entry's created_at
	cellBytes                 // Bytes
)

// kindOf is the cell kind of a record column (as the backend's selectExpr
// selects it).
func kindOf(c Column) cellKind {
	if c.List {
		return cellText
	}
	switch c.Type {
	case schema.Int, schema.BigInt:
		return cellInt
	case schema.Float:
		return cellFloat
	case schema.Boolean:
		return cellBool
	case schema.DateTime:
		return cellTime
	case schema.Bytes:
		return cellBytes
	}
	return cellText
}

// pageRow is the current row of the page statement, its columns by
// position, as a backend's driver hands them over. Bytes it returns are
// only valid until the next row.
type pageRow interface {
	null(i int) bool
	text(i int) []byte
	int(i int) (int64, error)
	float(i int) (float64, error)
	boolean(i int) (bool, error)
	time(i int) (time.Time, error)
	bytes(i int) ([]byte, error)
}

// pageBlock is the block of columns of one synced model in a page row:
// the table's columns, then its scopes, starting at column first.
type pageBlock struct {
	ti     *tableInfo
	first  int         // the block's first column in the row
	key    int         // the row column of the first primary key field: NULL when no record was joined
	fields []fieldCell // in the model's field order, as AppendRecord writes them
	scopes []int       // the row columns of the scopes
	kinds  []cellKind  // of the table's columns, in select order
	model  *schema.Model
}

// fieldCell is a field of a block's model and where its value is.
type fieldCell struct {
	name  []byte // `{"name":` for the first field, `,"name":` after
	col   int    // its row column
	field *schema.Field
	c     Column
}

// newPageBlock lays out ti's columns and paths scope columns from column
// first, or returns nil when a field has no column.
func newPageBlock(ti *tableInfo, first, paths int) *pageBlock {
	b := &pageBlock{ti: ti, first: first, model: ti.model}
	at := map[string]int{}
	for i, c := range ti.table.Columns {
		at[c.Field] = first + i
		b.kinds = append(b.kinds, kindOf(c))
	}
	for i, f := range ti.model.Fields {
		col, ok := at[f.Name]
		if !ok {
			return nil
		}
		name := []byte{','}
		if i == 0 {
			name[0] = '{'
		}
		name = append(jsonscan.AppendString(name, f.Name), ':')
		b.fields = append(b.fields, fieldCell{name: name, col: col, field: f, c: ti.byField[f.Name]})
	}
	key, ok := at[ti.model.PrimaryKey[0]]
	if !ok {
		return nil
	}
	b.key = key
	for p := range paths {
		b.scopes = append(b.scopes, first+len(ti.table.Columns)+p)
	}
	return b
}

// columns is how many columns the block takes.
func (b *pageBlock) columns() int { return len(b.kinds) + len(b.scopes) }

// appendRecord appends the record of the block in r as AppendRecord
// writes it: its fields in declaration order, each in its wire format.
func (b *pageBlock) appendRecord(dst []byte, r pageRow) ([]byte, error) {
	if len(b.fields) == 0 {
		return append(dst, "{}"...), nil
	}
	for _, f := range b.fields {
		dst = append(dst, f.name...)
		var err error
		if dst, err = appendCell(dst, r, f); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", b.model.Name, f.field.Name, err)
		}
	}
	return append(dst, '}'), nil
}

// appendCell appends the value of one field (see schema.Field.AppendValue
// for the forms, which this writes the same way).
func appendCell(dst []byte, r pageRow, f fieldCell) ([]byte, error) {
	i := f.col
	if r.null(i) {
		return append(dst, "null"...), nil
	}
	if f.c.List {
		v, err := decodeList(f.c.Type, string(r.text(i)))
		if err != nil {
			return nil, err
		}
		return f.field.AppendValue(dst, v)
	}
	switch f.c.Type {
	case schema.Int, schema.BigInt:
		n, err := r.int(i)
		return strconv.AppendInt(dst, n, 10), err
	case schema.Float:
		x, err := r.float(i)
		if err != nil {
			return nil, err
		}
		return schema.AppendFloat(dst, x)
	case schema.Boolean:
		v, err := r.boolean(i)
		return strconv.AppendBool(dst, v), err
	case schema.DateTime:
		t, err := r.time(i)
		if err != nil {
			return nil, err
		}
		return schema.AppendTime(dst, t)
	case schema.JSON:
		raw := r.text(i)
		if !json.Valid(raw) {
			return nil, errors.New("stored Json is not valid JSON")
		}
		return append(dst, raw...), nil
	case schema.Bytes:
		b, err := r.bytes(i)
		if err != nil {
			return nil, err
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	}
	return jsonscan.AppendString(dst, bytesString(r.text(i))), nil // String, enums, Decimal
}

// bytesString is b as a string without a copy, for a call that does not
// keep it.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// sqlRow is a pageRow read through database/sql (SQLite, and PostgreSQL
// when its connections are not pgx's): each column is scanned into a
// destination of its kind, reused from row to row.
type sqlRow struct {
	kinds    []cellKind
	hexBytes bool // Bytes come as hex text (SQLite's selectExpr)
	texts    []rawText
	ints     []sql.NullInt64
	floats   []sql.NullFloat64
	bools    []sql.NullBool
	times    []any
	dest     []any
	scratch  []byte
}

func newSQLRow(kinds []cellKind, hexBytes bool) *sqlRow {
	n := len(kinds)
	r := &sqlRow{kinds: kinds, hexBytes: hexBytes, texts: make([]rawText, n), ints: make([]sql.NullInt64, n),
		floats: make([]sql.NullFloat64, n), bools: make([]sql.NullBool, n), times: make([]any, n), dest: make([]any, n)}
	for i, k := range kinds {
		switch k {
		case cellInt:
			r.dest[i] = &r.ints[i]
		case cellFloat:
			r.dest[i] = &r.floats[i]
		case cellBool:
			r.dest[i] = &r.bools[i]
		case cellTime:
			r.dest[i] = &r.times[i]
		default:
			r.dest[i] = &r.texts[i]
		}
	}
	return r
}

func (r *sqlRow) null(i int) bool {
	switch r.kinds[i] {
	case cellInt:
		return !r.ints[i].Valid
	case cellFloat:
		return !r.floats[i].Valid
	case cellBool:
		return !r.bools[i].Valid
	case cellTime:
		return r.times[i] == nil
	}
	return !r.texts[i].valid
}

func (r *sqlRow) text(i int) []byte            { return r.texts[i].b }
func (r *sqlRow) int(i int) (int64, error)     { return r.ints[i].Int64, nil }
func (r *sqlRow) float(i int) (float64, error) { return r.floats[i].Float64, nil }
func (r *sqlRow) boolean(i int) (bool, error)  { return r.bools[i].Bool, nil }

// time reads a timestamp: a time.Time (PostgreSQL) or ISO-8601 text
// (SQLite).
func (r *sqlRow) time(i int) (time.Time, error) {
	switch v := r.times[i].(type) {
	case time.Time:
		return v.UTC(), nil
	case string:
		return parseStoredTime(v)
	case []byte:
		return parseStoredTime(string(v))
	}
	return time.Time{}, fmt.Errorf("stored DateTime of type %T", r.times[i])
}

func (r *sqlRow) bytes(i int) ([]byte, error) {
	b := r.texts[i].b
	if !r.hexBytes {
		return b, nil
	}
	if n := hex.DecodedLen(len(b)); cap(r.scratch) < n {
		r.scratch = make([]byte, n)
	}
	n, err := hex.Decode(r.scratch[:cap(r.scratch)], b)
	if err != nil {
		return nil, fmt.Errorf("stored Bytes: %w", err)
	}
	return r.scratch[:n], nil
}

// rawText is a Scan destination for a text column that keeps its buffer
// from row to row, a NULL included (sql.RawBytes in a sql.Null would drop
// it at every NULL, and a page's rows alternate NULL blocks).
type rawText struct {
	b     []byte
	valid bool
}

func (r *rawText) Scan(v any) error {
	r.valid = true
	switch x := v.(type) {
	case nil:
		r.valid = false
	case string:
		r.b = append(r.b[:0], x...)
	case []byte:
		r.b = append(r.b[:0], x...)
	case int64:
		r.b = strconv.AppendInt(r.b[:0], x, 10)
	default:
		return fmt.Errorf("a text column holds %T", v)
	}
	return nil
}

func parseStoredTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored DateTime %q: %w", s, err)
	}
	return t.UTC(), nil
}

// recordSet tells whether a page already named a record (a model and a
// key path), without a string made per entry.
type recordSet struct {
	seed maphash.Seed
	m    map[uint64]recordRef // a record per hash
	more []recordRef          // records whose hash another has
}

type recordRef struct {
	model   string
	keyPath []byte
}

// add reports whether the record was added before, and adds it.
func (s *recordSet) add(model string, keyPath []byte) bool {
	if s.m == nil {
		s.m = map[uint64]recordRef{}
	}
	if s.seed == (maphash.Seed{}) {
		s.seed = maphash.MakeSeed()
	}
	h := maphash.Bytes(s.seed, keyPath) ^ 31*maphash.String(s.seed, model)
	r, ok := s.m[h]
	switch {
	case !ok:
		s.m[h] = recordRef{model, keyPath}
		return false
	case r.model == model && bytes.Equal(r.keyPath, keyPath):
		return true
	}
	for _, o := range s.more {
		if o.model == model && bytes.Equal(o.keyPath, keyPath) {
			return true
		}
	}
	s.more = append(s.more, recordRef{model, keyPath})
	return false
}

// scanPage hands row the rows of a page statement read through
// database/sql, scanned into r, and closes them.
func scanPage(rows *sql.Rows, r *sqlRow, row func(pageRow) (bool, error)) error {
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return classify(err)
		}
		more, err := row(r)
		if err != nil || !more {
			return err
		}
	}
	return classify(rows.Err())
}
