package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tableShape is what the database's own catalog says about one table,
// normalized so that SQLite and PostgreSQL compare alike.
type tableShape struct {
	Columns     []string // column names, "?" appended when nullable
	PrimaryKey  []string
	Uniques     []string // unique indexes other than the primary key's, as "a,b"
	Indexes     []string // non-unique indexes, as "a,b"
	ForeignKeys []string // "a,b -> table(x,y) ON DELETE action"
}

// catalog reads tables of a tenant straight from the database catalog:
// SQLite pragmas on <dataDir>/tenants/<id>.db, or PostgreSQL's
// information_schema and pg_indexes for the schema t_<id>.
type catalog struct {
	t      testing.TB
	db     *sql.DB
	schema string // PostgreSQL only
	pg     bool
}

func openCatalog(t testing.TB, e *env, tenant string) *catalog {
	t.Helper()
	c := &catalog{t: t, pg: e.db.Name == "postgres"}
	var err error
	if c.pg {
		c.schema = "t_" + strings.ReplaceAll(tenant, "-", "_")
		c.db, err = sql.Open("pgx", e.url)
	} else {
		path := filepath.Join(e.dir, "tenants", tenant+".db")
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("tenant file: %v", err)
		}
		c.db, err = sql.Open("sqlite", "file:"+path+"?mode=ro")
	}
	if err != nil {
		t.Fatalf("open catalog: %v", err)
	}
	t.Cleanup(func() { c.db.Close() })
	return c
}

func (c *catalog) query(q string, args ...any) [][]any {
	c.t.Helper()
	rows, err := c.db.QueryContext(context.Background(), q, args...)
	if err != nil {
		c.t.Fatalf("catalog query %s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			c.t.Fatalf("catalog scan: %v", err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatalf("catalog rows: %v", err)
	}
	return out
}

// tables lists the tenant's tables.
func (c *catalog) tables() []string {
	c.t.Helper()
	var rows [][]any
	if c.pg {
		rows = c.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, c.schema)
	} else {
		rows = c.query(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r[0].(string))
	}
	slices.Sort(out)
	return out
}

func (c *catalog) shape(table string) tableShape {
	c.t.Helper()
	var s tableShape
	if c.pg {
		s = c.pgShape(table)
	} else {
		s = c.sqliteShape(table)
	}
	return s.normalized()
}

func (c *catalog) sqliteShape(table string) tableShape {
	var s tableShape
	type pkCol struct {
		pos  int64
		name string
	}
	var pk []pkCol
	for _, r := range c.query(`SELECT name, "notnull", pk FROM pragma_table_info(?)`, table) {
		name := r[0].(string)
		if r[1].(int64) == 0 && r[2].(int64) == 0 {
			name += "?"
		}
		s.Columns = append(s.Columns, name)
		if r[2].(int64) > 0 {
			pk = append(pk, pkCol{r[2].(int64), r[0].(string)})
		}
	}
	slices.SortFunc(pk, func(a, b pkCol) int { return int(a.pos - b.pos) })
	for _, p := range pk {
		s.PrimaryKey = append(s.PrimaryKey, p.name)
	}
	for _, r := range c.query(`SELECT name, "unique", origin FROM pragma_index_list(?)`, table) {
		if r[2].(string) == "pk" {
			continue
		}
		var cols []string
		for _, ic := range c.query(`SELECT name FROM pragma_index_info(?) ORDER BY seqno`, r[0].(string)) {
			cols = append(cols, ic[0].(string))
		}
		if r[1].(int64) == 1 {
			s.Uniques = append(s.Uniques, strings.Join(cols, ","))
		} else {
			s.Indexes = append(s.Indexes, strings.Join(cols, ","))
		}
	}
	fks := map[int64]*[4]string{}
	var ids []int64
	for _, r := range c.query(`SELECT id, "table", "from", "to", on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq`, table) {
		id := r[0].(int64)
		fk, ok := fks[id]
		if !ok {
			fk = &[4]string{"", r[1].(string), "", r[4].(string)}
			fks[id] = fk
			ids = append(ids, id)
		}
		fk[0] = strings.TrimPrefix(fk[0]+","+r[2].(string), ",")
		fk[2] = strings.TrimPrefix(fk[2]+","+r[3].(string), ",")
	}
	for _, id := range ids {
		fk := fks[id]
		s.ForeignKeys = append(s.ForeignKeys, fk[0]+" -> "+fk[1]+"("+fk[2]+") ON DELETE "+fk[3])
	}
	return s
}

func (c *catalog) pgShape(table string) tableShape {
	var s tableShape
	for _, r := range c.query(`SELECT column_name, is_nullable FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, c.schema, table) {
		name := r[0].(string)
		if r[1].(string) == "YES" {
			name += "?"
		}
		s.Columns = append(s.Columns, name)
	}
	pkName := ""
	for _, r := range c.query(`SELECT tc.constraint_name, kcu.column_name
		FROM information_schema.table_constraints tc
		JOIN information_schema.key_column_usage kcu
		  ON kcu.constraint_schema = tc.constraint_schema AND kcu.constraint_name = tc.constraint_name
		WHERE tc.table_schema = $1 AND tc.table_name = $2 AND tc.constraint_type = 'PRIMARY KEY'
		ORDER BY kcu.ordinal_position`, c.schema, table) {
		pkName = r[0].(string)
		s.PrimaryKey = append(s.PrimaryKey, r[1].(string))
	}
	for _, r := range c.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, c.schema, table) {
		if r[0].(string) == pkName {
			continue
		}
		def, _, _ := strings.Cut(r[1].(string), " WHERE ") // a partial index: its columns
		open, end := strings.LastIndex(def, "("), strings.LastIndex(def, ")")
		var cols []string
		for _, col := range strings.Split(def[open+1:end], ", ") {
			cols = append(cols, strings.Trim(col, `"`))
		}
		if strings.HasPrefix(def, "CREATE UNIQUE INDEX") {
			s.Uniques = append(s.Uniques, strings.Join(cols, ","))
		} else {
			s.Indexes = append(s.Indexes, strings.Join(cols, ","))
		}
	}
	for _, r := range c.query(`SELECT rc.constraint_name, rc.delete_rule,
		  (SELECT string_agg(kcu.column_name, ',' ORDER BY kcu.ordinal_position) FROM information_schema.key_column_usage kcu
		    WHERE kcu.constraint_schema = rc.constraint_schema AND kcu.constraint_name = rc.constraint_name),
		  (SELECT min(ccu.table_name) FROM information_schema.constraint_column_usage ccu
		    WHERE ccu.constraint_schema = rc.constraint_schema AND ccu.constraint_name = rc.constraint_name),
		  (SELECT string_agg(ccu.column_name, ',' ORDER BY ccu.column_name) FROM information_schema.constraint_column_usage ccu
		    WHERE ccu.constraint_schema = rc.constraint_schema AND ccu.constraint_name = rc.constraint_name)
		FROM information_schema.referential_constraints rc
		JOIN information_schema.table_constraints tc
		  ON tc.constraint_schema = rc.constraint_schema AND tc.constraint_name = rc.constraint_name
		WHERE tc.table_schema = $1 AND tc.table_name = $2`, c.schema, table) {
		// constraint_column_usage does not keep the order of the referenced
		// columns: normalized sorts them.
		s.ForeignKeys = append(s.ForeignKeys, r[2].(string)+" -> "+r[3].(string)+"("+r[4].(string)+") ON DELETE "+r[1].(string))
	}
	return s
}

// normalized sorts the index and foreign key lists, and the referenced
// columns of each foreign key.
func (s tableShape) normalized() tableShape {
	s.Uniques = slices.Sorted(slices.Values(s.Uniques))
	s.Indexes = slices.Sorted(slices.Values(s.Indexes))
	fks := make([]string, len(s.ForeignKeys))
	for i, fk := range s.ForeignKeys {
		fks[i] = sortedRefs(fk)
	}
	slices.Sort(fks)
	s.ForeignKeys = fks
	return s
}

// sortedRefs rewrites "... -> t(b,a) ..." so that the referenced columns are
// sorted, for comparison with PostgreSQL's unordered constraint_column_usage.
func sortedRefs(fk string) string {
	open, end := strings.Index(fk, "("), strings.Index(fk, ")")
	cols := strings.Split(fk[open+1:end], ",")
	slices.Sort(cols)
	return fk[:open+1] + strings.Join(cols, ",") + fk[end:]
}
