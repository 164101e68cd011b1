package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/syncplane/syncplane/core/schema"
)

// Layout is the dialect-independent shape of a tenant's record tables,
// derived from its schema. It is stored in the tenant's _meta table when
// applied, and diffed against the next one on reload.
type Layout struct {
	Tables []Table `json:"tables"`
}

// Table is one model's table.
type Table struct {
	Name        string       `json:"name"`
	Model       string       `json:"model"`
	Columns     []Column     `json:"columns"`
	PrimaryKey  []string     `json:"primaryKey"`
	Uniques     [][]string   `json:"uniques,omitempty"`
	ForeignKeys []ForeignKey `json:"foreignKeys,omitempty"`
}

// Column is one scalar field's column.
type Column struct {
	Name     string `json:"name"`
	Field    string `json:"field"`
	Type     string `json:"type"` // a Prisma scalar type; enums are "enum:<Name>"
	List     bool   `json:"list,omitempty"`
	Nullable bool   `json:"nullable,omitempty"`
	// Default is the SQL-independent default used when the column is added
	// to an existing table: a literal (JSON) or "now()".
	Default json.RawMessage `json:"default,omitempty"`
}

// ForeignKey is a relation whose target is a synced model.
type ForeignKey struct {
	Columns    []string `json:"columns"`
	RefTable   string   `json:"refTable"`
	RefColumns []string `json:"refColumns"`
	OnDelete   string   `json:"onDelete"` // SQL action: CASCADE, RESTRICT, NO ACTION, SET NULL, SET DEFAULT
}

// reserved table names hold syncplane's own per-tenant tables.
var reserved = map[string]bool{"_changelog": true, "_scope_heads": true, "_meta": true, "_applied_events": true, "_changelog_v2": true}

// LayoutOf derives the tables of the synced models, parents first.
func LayoutOf(s *schema.Schema, own *schema.Ownership) (Layout, error) {
	var l Layout
	tables := map[string]string{} // model -> table
	for _, m := range own.Synced() {
		tables[m.Name] = m.Table
	}
	for _, m := range own.Synced() {
		if reserved[strings.ToLower(m.Table)] {
			return l, fmt.Errorf("%s: model %s maps to table %q, which syncplane reserves", m.Pos, m.Name, m.Table)
		}
		t := Table{Name: m.Table, Model: m.Name}
		for _, f := range m.Fields {
			c := Column{Name: f.Column, Field: f.Name, Type: f.Type, List: f.List, Nullable: f.Optional}
			if f.Enum != nil {
				c.Type = "enum:" + f.Type
			}
			if f.Default != nil {
				switch f.Default.Kind {
				case schema.DefaultValue:
					c.Default, _ = json.Marshal(f.Default.Value)
				case schema.DefaultNow:
					c.Default = json.RawMessage(`"now()"`)
				}
			}
			if f.UpdatedAt && c.Default == nil {
				c.Default = json.RawMessage(`"now()"`)
			}
			t.Columns = append(t.Columns, c)
		}
		t.PrimaryKey = columnsOf(m, m.PrimaryKey)
		for _, u := range m.Uniques {
			t.Uniques = append(t.Uniques, columnsOf(m, u))
		}
		for _, r := range m.Relations {
			target, ok := tables[r.Target]
			if !ok {
				continue // relation to an excluded model: a plain column
			}
			tm := s.Model(r.Target)
			t.ForeignKeys = append(t.ForeignKeys, ForeignKey{
				Columns:    columnsOf(m, r.Fields),
				RefTable:   target,
				RefColumns: columnsOf(tm, r.References),
				OnDelete:   onDelete(r),
			})
		}
		l.Tables = append(l.Tables, t)
	}
	return l, nil
}

func columnsOf(m *schema.Model, fields []string) []string {
	cols := make([]string, len(fields))
	for i, name := range fields {
		cols[i] = name
		if f := m.Field(name); f != nil {
			cols[i] = f.Column
		}
	}
	return cols
}

// onDelete maps Prisma's referential action to SQL, with Prisma's defaults:
// SetNull for optional relations, Restrict for required ones.
func onDelete(r *schema.Relation) string {
	switch r.OnDelete {
	case "Cascade":
		return "CASCADE"
	case "Restrict":
		return "RESTRICT"
	case "NoAction":
		return "NO ACTION"
	case "SetNull":
		return "SET NULL"
	case "SetDefault":
		return "SET DEFAULT"
	}
	if r.Optional {
		return "SET NULL"
	}
	return "RESTRICT"
}

// Hash is a short fingerprint of the layout, kept in the platform registry.
func (l Layout) Hash() string {
	b, _ := json.Marshal(l)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (l Layout) table(name string) *Table {
	for i := range l.Tables {
		if l.Tables[i].Name == name {
			return &l.Tables[i]
		}
	}
	return nil
}

func (t *Table) column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// Change is one step from an applied layout to a new one.
type Change struct {
	Table  *Table
	Column *Column     // set for an added column
	Unique []string    // set for an added unique constraint
	FK     *ForeignKey // set with Column when the added column carries a relation
	Kind   string      // "table", "column", "unique", "dropunique"
}

// DestructiveError lists the changes that would lose or invalidate data.
type DestructiveError struct{ Problems []string }

func (e *DestructiveError) Error() string {
	return "destructive schema change refused (migrate the data by hand, then reload): " + strings.Join(e.Problems, "; ")
}

// Diff returns the additive changes from old to l, or a *DestructiveError
// naming every change that is not additive.
func Diff(old, l Layout) ([]Change, error) {
	var changes []Change
	var problems []string
	for _, ot := range old.Tables {
		if l.table(ot.Name) == nil {
			problems = append(problems, fmt.Sprintf("table %q (model %s) would be dropped", ot.Name, ot.Model))
		}
	}
	for i := range l.Tables {
		nt := &l.Tables[i]
		ot := old.table(nt.Name)
		if ot == nil {
			changes = append(changes, Change{Kind: "table", Table: nt})
			continue
		}
		if strings.Join(ot.PrimaryKey, ",") != strings.Join(nt.PrimaryKey, ",") {
			problems = append(problems, fmt.Sprintf("table %q: primary key changes from (%s) to (%s)",
				nt.Name, strings.Join(ot.PrimaryKey, ", "), strings.Join(nt.PrimaryKey, ", ")))
		}
		for _, oc := range ot.Columns {
			nc := nt.column(oc.Name)
			switch {
			case nc == nil:
				problems = append(problems, fmt.Sprintf("column %q.%q would be dropped", nt.Name, oc.Name))
			case nc.Type != oc.Type || nc.List != oc.List:
				problems = append(problems, fmt.Sprintf("column %q.%q changes type from %s to %s", nt.Name, oc.Name, typeName(oc), typeName(*nc)))
			case nc.Nullable != oc.Nullable:
				problems = append(problems, fmt.Sprintf("column %q.%q changes from %s to %s", nt.Name, oc.Name, nullName(oc), nullName(*nc)))
			}
		}
		for j := range nt.Columns {
			nc := &nt.Columns[j]
			if ot.column(nc.Name) != nil {
				continue
			}
			if !nc.Nullable && nc.Default == nil {
				problems = append(problems, fmt.Sprintf("column %q.%q is added as required without a @default, so existing rows would have no value", nt.Name, nc.Name))
				continue
			}
			changes = append(changes, Change{Kind: "column", Table: nt, Column: nc, FK: fkOf(nt, nc.Name)})
		}
		for _, fk := range nt.ForeignKeys {
			if fkOf(ot, fk.Columns[0]) != nil || ot.column(fk.Columns[0]) == nil {
				continue // unchanged, or added together with its new column
			}
			problems = append(problems, fmt.Sprintf("table %q: a relation is added over existing column(s) %s", nt.Name, strings.Join(fk.Columns, ", ")))
		}
		for _, ofk := range ot.ForeignKeys {
			nfk := fkOf(nt, ofk.Columns[0])
			if nfk == nil || nfk.RefTable != ofk.RefTable || strings.Join(nfk.Columns, ",") != strings.Join(ofk.Columns, ",") || nfk.OnDelete != ofk.OnDelete {
				problems = append(problems, fmt.Sprintf("table %q: the relation over %s changes or is removed", nt.Name, strings.Join(ofk.Columns, ", ")))
			}
		}
		for _, u := range nt.Uniques {
			if !hasUnique(ot, u) {
				changes = append(changes, Change{Kind: "unique", Table: nt, Unique: u})
			}
		}
		for _, u := range ot.Uniques {
			if !hasUnique(nt, u) {
				changes = append(changes, Change{Kind: "dropunique", Table: nt, Unique: u})
			}
		}
	}
	if len(problems) > 0 {
		return nil, &DestructiveError{Problems: problems}
	}
	return changes, nil
}

func fkOf(t *Table, column string) *ForeignKey {
	for i := range t.ForeignKeys {
		for _, c := range t.ForeignKeys[i].Columns {
			if c == column {
				return &t.ForeignKeys[i]
			}
		}
	}
	return nil
}

func hasUnique(t *Table, cols []string) bool {
	want := strings.Join(cols, ",")
	for _, u := range t.Uniques {
		if strings.Join(u, ",") == want {
			return true
		}
	}
	return false
}

func typeName(c Column) string {
	if c.List {
		return c.Type + "[]"
	}
	return c.Type
}

func nullName(c Column) string {
	if c.Nullable {
		return "optional"
	}
	return "required"
}
