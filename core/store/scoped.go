package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/syncplane/syncplane/core/schema"
)

// scopedSelect renders the start of a query reading records of ti's model
// (alias m) together with one scope column per ownership path: the root
// key the path reaches, or NULL when a foreign key on the path is null.
// Each hop but the last is a correlated scalar subquery, an index lookup
// by the referenced key whatever the table statistics say (a join may be
// planned as a scan of the whole parent table); the last hop's foreign key
// holds the root's key itself when it references the root's primary key,
// and the database's foreign keys guarantee that the root exists.
func (t *Tenant) scopedSelect(ti *tableInfo) (string, int) {
	cols, n := t.scopedColumns(ti, "m")
	if n == 0 {
		return "", 0
	}
	return "SELECT " + cols + " FROM " + ti.name + " AS m", n
}

// scopedColumns is the select list of scopedSelect for the record aliased
// alias, and how many scope columns end it (0: the model is not synced).
func (t *Tenant) scopedColumns(ti *tableInfo, alias string) (string, int) {
	if t.own == nil || !t.own.IsSynced(ti.model.Name) {
		return "", 0
	}
	var sel strings.Builder
	for i, c := range ti.table.Columns {
		if i > 0 {
			sel.WriteString(", ")
		}
		sel.WriteString(t.d.selectExpr(alias+"."+quote(c.Name), c))
	}
	root := t.own.Root
	if ti.model.Name == root.Name {
		sel.WriteString(", CAST(" + alias + "." + quote(column(root, root.PrimaryKey[0])) + " AS TEXT)")
		return sel.String(), 1
	}
	paths := t.own.Paths(ti.model.Name)
	for p, path := range paths {
		sel.WriteString(", CAST(" + t.scopeExpr(path, p, 0, alias, ti.model) + " AS TEXT)")
	}
	return sel.String(), len(paths)
}

// scopeExpr is the root key reached from the record aliased from (of
// model) along path[h:].
func (t *Tenant) scopeExpr(path schema.Path, p, h int, from string, model *schema.Model) string {
	hop := path[h]
	root := t.own.Root
	last := h == len(path)-1
	if last && slices.Equal(hop.References, root.PrimaryKey) {
		return from + "." + quote(column(model, hop.Fields[0]))
	}
	target := t.tables[hop.Target].model
	alias := "p" + strconv.Itoa(p) + "_" + strconv.Itoa(h)
	var where strings.Builder
	for k, f := range hop.Fields {
		if k > 0 {
			where.WriteString(" AND ")
		}
		where.WriteString(alias + "." + quote(column(target, hop.References[k])) + " = " + from + "." + quote(column(model, f)))
	}
	inner := alias + "." + quote(column(root, root.PrimaryKey[0]))
	if !last {
		inner = t.scopeExpr(path, p, h+1, alias, target)
	}
	return "(SELECT " + inner + " FROM " + t.tables[hop.Target].name + " AS " + alias + " WHERE " + where.String() + ")"
}

// column is the stored column of a model's field.
func column(m *schema.Model, field string) string {
	if f := m.Field(field); f != nil {
		return f.Column
	}
	return field
}

// LoadScoped returns the committed records of a synced model with the
// given primary keys and, for each, the scopes its ownership paths resolve
// to now (shortest path first, without duplicates; none when every path
// has a null foreign key): one query, whatever the depth of the model.
func (t *Tenant) LoadScoped(ctx context.Context, model string, keys [][]any) ([]schema.Record, [][]string, error) {
	if len(keys) == 0 {
		return nil, nil, nil
	}
	ti, err := t.info(model)
	if err != nil {
		return nil, nil, err
	}
	if ti.scoped == "" {
		return nil, nil, fmt.Errorf("tenant %s: model %q is not synced", t.id, model)
	}
	rows, err := t.d.queryKeys(ctx, t, t.db, ti.scoped, ti, "m.", ti.model.PrimaryKey, keys)
	if err != nil {
		return nil, nil, classify(err)
	}
	defer rows.Close()
	sc := newRecordScanner(t.d, ti.table.Columns, ti.paths)
	recs := make([]schema.Record, 0, len(keys))
	out := make([][]string, 0, len(keys))
	for rows.Next() {
		if err := rows.Scan(sc.dest...); err != nil {
			return nil, nil, fmt.Errorf("tenant %s: read %s: %w", t.id, model, classify(err))
		}
		r, err := sc.read()
		if err != nil {
			return nil, nil, fmt.Errorf("tenant %s: read %s: %w", t.id, model, err)
		}
		recs = append(recs, r)
		out = append(out, sc.readScopes())
	}
	return recs, out, classify(rows.Err())
}
