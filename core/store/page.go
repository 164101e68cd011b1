package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
)

// A PageEntry is a changelog entry with its record as it is now: Record is
// nil when the record is gone (or its model is no longer synced), Scopes
// are the scopes the record resolves to now (see LoadScoped).
type PageEntry struct {
	changelog.Entry
	Record schema.Record
	Scopes []string
}

// ChangesWithRecords is ChangesAcross with each entry's record and its
// scopes: on PostgreSQL one statement for the page, entries and records
// (when every synced model's key is text or an integer, which the
// statement can read from the entry's key path); otherwise ChangesAcross
// and one LoadScoped per model on the page.
func (t *Tenant) ChangesWithRecords(ctx context.Context, after map[string]string, limit int) ([]PageEntry, error) {
	if t.page != nil {
		return t.pgChangesWithRecords(ctx, after, limit)
	}
	entries, err := t.ChangesAcross(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]PageEntry, len(entries))
	byModel := map[string][][]any{}
	keys := make([]string, len(entries))
	for i, e := range entries {
		out[i].Entry = e
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
		if f, ok := got[out[i].Model][keys[i]]; ok {
			out[i].Record, out[i].Scopes = f.rec, f.scopes
		}
	}
	return out, nil
}

// keyOf is the canonical key of r (scope.KeyJSON of its primary key).
func keyOf(m *schema.Model, r schema.Record) string {
	pk := make([]any, len(m.PrimaryKey))
	for k, f := range m.PrimaryKey {
		pk[k] = r[f]
	}
	return scope.KeyJSON(pk)
}

// pageQuery is a tenant's one-statement pull page on PostgreSQL: the
// changelog entries after each scope's cursor, then one block of columns
// per synced model (its columns and scopes), filled for the entries of
// that model whose record exists.
type pageQuery struct {
	sql    string
	blocks []pageBlock
	index  map[string]int // model → block
}

type pageBlock struct {
	ti    *tableInfo
	paths int
}

// newPageQuery renders the page statement, or returns nil when some synced
// model's key cannot be read from a key path by the statement.
func (t *Tenant) newPageQuery() *pageQuery {
	if t.d.name() != "postgres" || t.own == nil {
		return nil
	}
	pq := &pageQuery{index: map[string]int{}}
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
			var cast string
			switch {
			case c.List:
				return nil
			case c.Type == schema.String || strings.HasPrefix(c.Type, "enum:"):
			case c.Type == schema.Int || c.Type == schema.BigInt:
				cast = "::bigint"
			default:
				return nil
			}
			on = append(on, alias+"."+quote(c.Name)+" = CASE WHEN c.model = "+stringLiteral(name)+
				" THEN (c.key_path::jsonb->>"+strconv.Itoa(k)+")"+cast+" END")
		}
		cols, paths := t.scopedColumns(ti, alias)
		sel.WriteString(", " + cols)
		joins.WriteString(" LEFT JOIN " + ti.name + " AS " + alias + " ON " + strings.Join(on, " AND "))
		pq.index[name] = len(pq.blocks)
		pq.blocks = append(pq.blocks, pageBlock{ti: ti, paths: paths})
	}
	pq.sql = "WITH c AS (" + t.pgEntriesSQL() + ") " + sel.String() + " FROM c" + joins.String() + " ORDER BY c.id"
	return pq
}

func (t *Tenant) pgChangesWithRecords(ctx context.Context, after map[string]string, limit int) ([]PageEntry, error) {
	if len(after) == 0 {
		return nil, nil
	}
	scopes, afters := cursorArrays(after)
	pq := t.page
	rows, err := t.db.DB.QueryContext(ctx, pq.sql, prepared, scopes, afters, int64(limit))
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var (
		e       changelog.Entry
		keyPath string
		created any
	)
	dest := []any{&e.ID, &e.Model, &keyPath, &e.Operation, &e.ScopeKey, &e.OutboxEventID, &created}
	blocks := make([]*recordScanner, len(pq.blocks))
	for i, b := range pq.blocks {
		blocks[i] = newRecordScanner(t.d, b.ti.table.Columns, b.paths)
		dest = append(dest, blocks[i].dest...)
	}
	out := make([]PageEntry, 0, min(limit, 1000))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, classify(err)
		}
		ch := PageEntry{Entry: e}
		ch.KeyPath = []byte(keyPath)
		ch.CreatedAt = entryTime(created)
		if bi, ok := pq.index[e.Model]; ok {
			r, err := blocks[bi].read()
			if err != nil {
				return nil, fmt.Errorf("tenant %s: read %s: %w", t.id, e.Model, err)
			}
			if r[pq.blocks[bi].ti.model.PrimaryKey[0]] != nil { // the record exists
				ch.Record, ch.Scopes = r, blocks[bi].readScopes()
			}
		}
		out = append(out, ch)
	}
	return out, classify(rows.Err())
}
