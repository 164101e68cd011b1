package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
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

// ReadPageJSON reads at most limit changelog entries of the given scopes,
// each after its own cursor id ("" for the beginning), merged in id order,
// and hands them to fn one at a time, in order, each with its record's
// current state as JSON in the wire format (PageEntry.JSON, the bytes
// pull sends) and its scopes, the first time the page names that record
// (later entries of the same record come with Repeat set). fn returns
// false to stop: the rest of the page is neither read nor kept, so what a
// page costs in memory is what fn keeps, whatever the records' sizes.
// The entry, its JSON and its Scopes are only valid during the call: the
// next row reuses them.
//
// Whatever the number of scopes, the entries come from one statement that
// reads each scope through its (scope_key, id) index; when every synced
// model's key is text or an integer (which the statement can read from the
// entry's key path), the same statement joins each entry's record (see
// newPageQuery), the rows are read as they arrive, and each record's JSON
// is written straight from its columns, as schema.Model.AppendRecord
// writes it, byte for byte; otherwise the records are loaded with
// LoadScoped, a few at a time, as fn takes them, and encoded with
// AppendRecord.
func (t *Tenant) ReadPageJSON(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error {
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

// ReadPage is ReadPageJSON with each record also decoded
// (PageEntry.Record), and JSON and Scopes the entry's own: for tools and
// tests that look at the records; pull sends the JSON as it is.
func (t *Tenant) ReadPage(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error {
	return t.ReadPageJSON(ctx, after, limit, func(e *syncdata.PageEntry) (bool, error) {
		e.JSON, e.Scopes = bytes.Clone(e.JSON), slices.Clone(e.Scopes)
		e.Record = nil
		if e.JSON != nil {
			r, err := t.tables[e.Model].model.DecodeRecord(e.JSON)
			if err != nil {
				return false, fmt.Errorf("tenant %s: changelog entry %s: %w", t.id, e.ID, err)
			}
			e.Record = r
		}
		return fn(e)
	})
}

// withRecords loads the records of entries that are not in loaded (the
// records of the page's earlier chunks), adds them to it, and encodes
// them.
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
			doc, err := t.tables[out[i].Model].model.AppendRecord(nil, f.rec)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: changelog entry %s: %w", t.id, out[i].ID, err)
			}
			out[i].JSON, out[i].Scopes = doc, f.scopes
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
			e.Record, e.JSON, e.Scopes = out[i].Record, out[i].JSON, out[i].Scopes
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
// its (scope_key, id) index (see the backends' entriesSQL for how each
// takes its arguments).
func (t *Tenant) entriesSQL() string { return t.d.entriesSQL(t.prefix + `"_changelog"`) }

// queryEntries runs q (entriesSQL, or a statement built on it; stmt when
// it is prepared) for after.
func (t *Tenant) queryEntries(ctx context.Context, q string, stmt *sql.Stmt, after map[string]string, limit int) (*sql.Rows, error) {
	rows, err := t.d.queryEntries(ctx, t, q, stmt, after, limit)
	if err != nil {
		return nil, classify(err)
	}
	return rows, nil
}

// pageQuery is a tenant's one-statement pull page: the changelog entries
// after each scope's cursor (entryColumns), each followed by one block of
// columns per synced model (its columns and scopes), filled when the entry
// is of that model and its record exists.
type pageQuery struct {
	sql    string
	blocks []*pageBlock
	index  map[string]*pageBlock // model → its block
	kinds  []cellKind            // of every column of a row

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

// The page row's first columns: the entry (entryColumns).
var entryKinds = []cellKind{cellText, cellText, cellText, cellText, cellText, cellText, cellTime}

// newPageQuery renders the page statement, or returns nil when some synced
// model's key cannot be read from a key path by the statement.
//
// Each synced model is LEFT JOINed by its key, read from the entry's key
// path, so a row carries the columns of its entry's record. A record named
// by several entries of a page is read with each (the page's later entries
// of it are told apart while reading, see readPageOnce): numbering them in
// the statement (a window over the page) cost the database more than the
// rare repeated record does.
func (t *Tenant) newPageQuery() *pageQuery {
	if t.own == nil {
		return nil
	}
	pq := &pageQuery{index: map[string]*pageBlock{}, kinds: slices.Clone(entryKinds)}
	var sel, joins strings.Builder
	sel.WriteString("SELECT c.id, c.model, c.key_path, c.operation, c.scope_key, c.outbox_event_id, c.created_at")
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
		var on []string
		for k, f := range ti.model.PrimaryKey {
			c, ok := ti.byField[f]
			if !ok {
				return nil
			}
			var integer bool
			switch {
			case c.List:
				return nil
			case c.Type == schema.String || strings.HasPrefix(c.Type, "enum:"):
			case c.Type == schema.Int || c.Type == schema.BigInt:
				integer = true
			default:
				return nil
			}
			elem := t.d.keyPathElem(k, integer)
			on = append(on, alias+"."+quote(c.Name)+" = CASE WHEN c.model = "+stringLiteral(name)+" THEN "+elem+" END")
		}
		cols, paths := t.scopedColumns(ti, alias)
		b := newPageBlock(ti, len(pq.kinds), paths)
		if b == nil {
			return nil
		}
		sel.WriteString(", " + cols)
		joins.WriteString(" LEFT JOIN " + ti.name + " AS " + alias + " ON " + strings.Join(on, " AND "))
		pq.kinds = append(pq.kinds, b.kinds...)
		for range paths {
			pq.kinds = append(pq.kinds, cellText)
		}
		pq.index[name] = b
		pq.blocks = append(pq.blocks, b)
	}
	pq.sql = sel.String() + " FROM (" + t.entriesSQL() + ") AS c" + joins.String() + " ORDER BY c.id"
	return pq
}

// readPageOnce is ReadPageJSON in one statement (newPageQuery): each
// row's record is written as JSON from its columns as the row is read
// (pageBlock.appendRecord). The entry handed to fn, its JSON and Scopes,
// are reused for the next row.
func (t *Tenant) readPageOnce(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error {
	pq := t.page
	var (
		e               syncdata.PageEntry
		doc             []byte
		found           []string
		seen            = recordSet{m: make(map[uint64]recordRef, min(limit, 256))}
		model, op, scop string // the previous row's: most rows repeat them
	)
	return t.d.pageRows(ctx, t, pq, after, limit, func(r pageRow) (bool, error) {
		e.ID = string(r.text(0))
		e.Model = reuse(&model, r.text(1))
		e.KeyPath = bytes.Clone(r.text(2))
		e.Operation = changelog.Operation(reuse(&op, r.text(3)))
		e.ScopeKey = reuse(&scop, r.text(4))
		e.OutboxEventID = string(r.text(5))
		e.CreatedAt, _ = r.time(6) // as entryTime reads it
		e.Repeat = seen.add(e.Model, e.KeyPath)
		e.JSON, e.Scopes = nil, nil
		if b := pq.index[e.Model]; b != nil && !e.Repeat && !r.null(b.key) { // the record exists
			var err error
			if doc, err = b.appendRecord(doc[:0], r); err != nil {
				return false, fmt.Errorf("tenant %s: read %w", t.id, err)
			}
			found = found[:0]
			for _, c := range b.scopes {
				if s := r.text(c); !r.null(c) && !slices.Contains(found, bytesString(s)) {
					found = append(found, string(s))
				}
			}
			e.JSON, e.Scopes = doc, found
		}
		return fn(&e)
	})
}

// reuse returns *last when b spells it, else b as a new string, which it
// keeps in *last.
func reuse(last *string, b []byte) string {
	if *last != string(b) {
		*last = string(b)
	}
	return *last
}
