package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/syncdata"
)

// recordKey names the record of an entry within a page: entries of one
// record carry the same model and the same key path (scope.KeyJSON).
func recordKey(model string, keyPath []byte) string { return model + "\x00" + string(keyPath) }

// pageChunk is how many distinct records ReadPage loads at once when the
// page cannot be read in one statement (keys of other types than text and
// integers): the most records it holds that the reader may not take.
const pageChunk = 16

// ReadPage reads at most limit changelog entries of the given scopes, each
// after its own cursor id ("" for the beginning), merged in id order, and
// hands them to fn one at a time, in order, each with its record's current
// state and scopes, the first time the page names that record (later
// entries of the same record come with Repeat set). fn returns false to
// stop: the rest of the page is neither read nor kept, so what a page
// costs in memory is what fn keeps, whatever the records' sizes.
//
// Whatever the number of scopes, the entries come from one statement that
// reads each scope through its (scope_key, id) index; when every synced
// model's key is text or an integer (which the statement can read from the
// entry's key path), the same statement joins each record to the first
// entry that names it and the rows are read as they arrive; otherwise the
// records are loaded with LoadScoped, a few at a time, as fn takes them.
func (t *Tenant) ReadPage(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error {
	if len(after) == 0 || limit < 1 {
		return nil
	}
	if t.page != nil {
		return t.readPageOnce(ctx, after, limit, fn)
	}
	rows, err := t.queryEntries(ctx, t.entriesSQL(), nil, after, limit)
	if err != nil {
		return err
	}
	entries, err := scanEntries(rows, limit)
	if err != nil {
		return err
	}
	seen, loaded := map[string]bool{}, map[string]bool{}
	for start := 0; start < len(entries); {
		// The next chunk: entries up to the pageChunk-th new record.
		end, fresh := start, 0
		for ; end < len(entries); end++ {
			k := recordKey(entries[end].Model, entries[end].KeyPath)
			if seen[k] {
				continue
			}
			if fresh == pageChunk {
				break
			}
			fresh++
			seen[k] = true
		}
		page, err := t.withRecords(ctx, entries[start:end], loaded)
		if err != nil {
			return err
		}
		for i := range page {
			more, err := fn(&page[i])
			if err != nil || !more {
				return err
			}
		}
		start = end
	}
	return nil
}

// withRecords loads the records of entries that are not in loaded (the
// records of the page's earlier chunks), and adds them to it.
func (t *Tenant) withRecords(ctx context.Context, entries []changelog.Entry, first map[string]bool) ([]syncdata.PageEntry, error) {
	out := make([]syncdata.PageEntry, len(entries))
	byModel := map[string][][]any{}
	keys := make([]string, len(entries))
	for i, e := range entries {
		out[i].Entry = e
		rk := recordKey(e.Model, e.KeyPath)
		if first[rk] {
			out[i].Repeat = true
			continue
		}
		first[rk] = true
		ti, ok := t.tables[e.Model]
		if !ok || ti.scoped == "" {
			continue // a model removed from sync since: its entries carry no record
		}
		pk, err := ti.model.ValidateKey(e.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: changelog entry %s: key path %s: %w", t.id, e.ID, e.KeyPath, err)
		}
		keys[i] = scope.KeyJSON(pk)
		byModel[e.Model] = append(byModel[e.Model], pk)
	}
	type found struct {
		rec    schema.Record
		scopes []string
	}
	got := map[string]map[string]found{}
	for model, pks := range byModel {
		recs, scopes, err := t.LoadScoped(ctx, model, pks)
		if err != nil {
			return nil, err
		}
		m := t.tables[model].model
		byKey := make(map[string]found, len(recs))
		for i, r := range recs {
			byKey[keyOf(m, r)] = found{r, scopes[i]}
		}
		got[model] = byKey
	}
	for i := range out {
		if out[i].Repeat || keys[i] == "" {
			continue
		}
		if f, ok := got[out[i].Model][keys[i]]; ok {
			out[i].Record, out[i].Scopes = f.rec, f.scopes
		}
	}
	return out, nil
}

// ChangesWithRecords is ReadPage collected into a slice, each repeated
// entry with the record and scopes of the record's first entry.
func (t *Tenant) ChangesWithRecords(ctx context.Context, after map[string]string, limit int) ([]syncdata.PageEntry, error) {
	var out []syncdata.PageEntry
	first := map[string]int{}
	err := t.ReadPage(ctx, after, limit, func(e *syncdata.PageEntry) (bool, error) {
		k := recordKey(e.Model, e.KeyPath)
		if i, ok := first[k]; ok && e.Repeat {
			e.Record, e.Scopes = out[i].Record, out[i].Scopes
		} else {
			first[k] = len(out)
		}
		out = append(out, *e)
		return true, nil
	})
	return out, err
}

// keyOf is the canonical key of r (scope.KeyJSON of its primary key).
func keyOf(m *schema.Model, r schema.Record) string {
	pk := make([]any, len(m.PrimaryKey))
	for k, f := range m.PrimaryKey {
		pk[k] = r[f]
	}
	return scope.KeyJSON(pk)
}

// entryColumns are the changelog columns of a page, in scanEntries' order.
const entryColumns = "id, model, key_path, operation, scope_key, outbox_event_id, created_at"

// entriesSQL reads the changelog entries of a page, merged in id order,
// in one statement whatever the number of scopes, each scope read through
// its (scope_key, id) index. On PostgreSQL $1 are the scopes, $2 their
// cursors (in the same order) and $3 the limit: a LATERAL subquery per
// scope takes its first entries. On SQLite (no LATERAL, and at most 500
// terms in a compound SELECT) ?1 is a JSON array of [scope, cursor] pairs
// and ?2 the limit: each scope's range ends at its limit-th entry after the
// cursor, found by one index seek, so that no scope is read past what the
// page can hold.
func (t *Tenant) entriesSQL() string {
	tbl := t.prefix + `"_changelog"`
	if t.d.name() == "postgres" {
		return "SELECT c.id, c.model, c.key_path, c.operation, c.scope_key, c.outbox_event_id, c.created_at" +
			" FROM unnest($1::text[], $2::text[]) AS s(scope, after) CROSS JOIN LATERAL (SELECT " + entryColumns +
			" FROM " + tbl + " WHERE scope_key = s.scope AND id > s.after ORDER BY id LIMIT $3) AS c ORDER BY c.id LIMIT $3"
	}
	return "SELECT c.id, c.model, c.key_path, c.operation, c.scope_key, c.outbox_event_id, c.created_at" +
		" FROM json_each(?1) AS s JOIN " + tbl + " AS c ON c.scope_key = s.value ->> 0 AND c.id > s.value ->> 1" +
		" AND c.id <= coalesce((SELECT i.id FROM " + tbl + " AS i WHERE i.scope_key = s.value ->> 0 AND i.id > s.value ->> 1" +
		" ORDER BY i.id LIMIT 1 OFFSET ?2 - 1), '~') ORDER BY c.id LIMIT ?2"
}

// queryEntries runs q (entriesSQL, or a statement built on it; on SQLite
// stmt when it is prepared) for after.
func (t *Tenant) queryEntries(ctx context.Context, q string, stmt *sql.Stmt, after map[string]string, limit int) (*sql.Rows, error) {
	scopes, afters := cursorArrays(after)
	var rows *sql.Rows
	var err error
	switch {
	case t.d.name() == "postgres":
		rows, err = t.db.DB.QueryContext(ctx, q, prepared, scopes, afters, int64(limit))
	default:
		pairs := make([][2]string, len(scopes))
		for i, sc := range scopes {
			pairs[i] = [2]string{sc, afters[i]}
		}
		arg, _ := json.Marshal(pairs) // strings only: cannot fail
		if stmt != nil {
			rows, err = stmt.QueryContext(ctx, string(arg), int64(limit))
		} else {
			rows, err = t.db.DB.QueryContext(ctx, q, string(arg), int64(limit))
		}
	}
	if err != nil {
		return nil, classify(err)
	}
	return rows, nil
}

// pageQuery is a tenant's one-statement pull page: the changelog entries
// after each scope's cursor, numbered per record, then one block of
// columns per synced model (its columns and scopes), filled for the first
// entry of each record on the page when the record exists.
type pageQuery struct {
	sql    string
	blocks []pageBlock
	index  map[string]int // model → block

	// On SQLite the statement is prepared once (parsing it costs about as
	// much as running it); PostgreSQL's connections cache it (prepared).
	mu   sync.Mutex
	stmt *sql.Stmt
}

// prepare returns the SQLite statement of pq, prepared on db's first use.
func (pq *pageQuery) prepare(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	pq.mu.Lock()
	defer pq.mu.Unlock()
	if pq.stmt == nil {
		st, err := db.PrepareContext(ctx, pq.sql)
		if err != nil {
			return nil, classify(err)
		}
		pq.stmt = st
	}
	return pq.stmt, nil
}

type pageBlock struct {
	ti    *tableInfo
	paths int
}

// newPageQuery renders the page statement, or returns nil when some synced
// model's key cannot be read from a key path by the statement.
func (t *Tenant) newPageQuery() *pageQuery {
	if t.own == nil {
		return nil
	}
	pg := t.d.name() == "postgres"
	pq := &pageQuery{index: map[string]int{}}
	var sel, joins strings.Builder
	sel.WriteString("SELECT c.id, c.model, c.key_path, c.operation, c.scope_key, c.outbox_event_id, c.created_at, c.n")
	models := make([]string, 0, len(t.tables))
	for name, ti := range t.tables {
		if ti.scoped != "" {
			models = append(models, name)
		}
	}
	sort.Strings(models)
	for i, name := range models {
		ti := t.tables[name]
		alias := "m" + strconv.Itoa(i)
		on := []string{"c.n = 1"}
		for k, f := range ti.model.PrimaryKey {
			c, ok := ti.byField[f]
			if !ok {
				return nil
			}
			var cast string
			switch {
			case c.List:
				return nil
			case c.Type == schema.String || strings.HasPrefix(c.Type, "enum:"):
			case c.Type == schema.Int || c.Type == schema.BigInt:
				if pg {
					cast = "::bigint"
				}
			default:
				return nil
			}
			elem := "(c.key_path::jsonb->>" + strconv.Itoa(k) + ")" + cast
			if !pg {
				elem = "(c.key_path ->> " + strconv.Itoa(k) + ")"
			}
			on = append(on, alias+"."+quote(c.Name)+" = CASE WHEN c.model = "+stringLiteral(name)+" THEN "+elem+" END")
		}
		cols, paths := t.scopedColumns(ti, alias)
		sel.WriteString(", " + cols)
		joins.WriteString(" LEFT JOIN " + ti.name + " AS " + alias + " ON " + strings.Join(on, " AND "))
		pq.index[name] = len(pq.blocks)
		pq.blocks = append(pq.blocks, pageBlock{ti: ti, paths: paths})
	}
	pq.sql = "WITH e AS (" + t.entriesSQL() + "), c AS (SELECT e.*, row_number() OVER (PARTITION BY e.model, e.key_path ORDER BY e.id) AS n FROM e) " +
		sel.String() + " FROM c" + joins.String() + " ORDER BY c.id"
	return pq
}

// readPageOnce is ReadPage in one statement (newPageQuery).
func (t *Tenant) readPageOnce(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error {
	pq := t.page
	var stmt *sql.Stmt
	if t.d.name() != "postgres" {
		var err error
		if stmt, err = pq.prepare(ctx, t.db.DB); err != nil {
			return err
		}
	}
	rows, err := t.queryEntries(ctx, pq.sql, stmt, after, limit)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		e       changelog.Entry
		keyPath string
		created any
		n       int64
	)
	dest := []any{&e.ID, &e.Model, &keyPath, &e.Operation, &e.ScopeKey, &e.OutboxEventID, &created, &n}
	blocks := make([]*recordScanner, len(pq.blocks))
	for i, b := range pq.blocks {
		blocks[i] = newRecordScanner(t.d, b.ti.table.Columns, b.paths)
		dest = append(dest, blocks[i].dest...)
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return classify(err)
		}
		ch := syncdata.PageEntry{Entry: e, Repeat: n > 1}
		ch.KeyPath = []byte(keyPath)
		ch.CreatedAt = entryTime(created)
		if bi, ok := pq.index[e.Model]; ok && !ch.Repeat {
			r, err := blocks[bi].read()
			if err != nil {
				return fmt.Errorf("tenant %s: read %s: %w", t.id, e.Model, err)
			}
			if r[pq.blocks[bi].ti.model.PrimaryKey[0]] != nil { // the record exists
				ch.Record, ch.Scopes = r, blocks[bi].readScopes()
			}
		}
		more, err := fn(&ch)
		if err != nil || !more {
			return err
		}
	}
	return classify(rows.Err())
}
