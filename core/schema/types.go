package schema

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Pos is a position in a schema source file. Lines and columns start at 1.
type Pos struct {
	File   string
	Line   int
	Column int
}

// String formats the position as file:line:column.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Error is a schema error at a source position.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList collects every error found in a schema, in source order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Scalar type names of the Prisma subset syncplane understands.
const (
	String   = "String"
	Int      = "Int"
	Float    = "Float"
	Boolean  = "Boolean"
	DateTime = "DateTime"
	JSON     = "Json"
	Bytes    = "Bytes"
	BigInt   = "BigInt"
	Decimal  = "Decimal"
)

// Schema is a parsed Prisma schema: every model and enum of every file.
type Schema struct {
	Models []*Model // in source order (files sorted by name, then declaration order)
	Enums  []*Enum
	IDB    *IDBGenerator // prisma-idb's generator block; nil when the schema has none
}

// Model returns the model with the given name, or nil.
func (s *Schema) Model(name string) *Model {
	for _, m := range s.Models {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Enum returns the enum with the given name, or nil.
func (s *Schema) Enum(name string) *Enum {
	for _, e := range s.Enums {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Enum is a Prisma enum.
type Enum struct {
	Name   string
	Values []string
	Pos    Pos
}

// Model is a Prisma model. Fields holds the columns (scalar and enum
// fields); relation fields appear in Relations only when this model holds
// the foreign key (the side with `fields: [...]`). Back-relation list fields
// (`boards Board[]`) are accepted and not recorded.
type Model struct {
	Name       string
	Table      string // @@map, or Name
	Fields     []*Field
	Relations  []*Relation
	PrimaryKey []string   // field names, from @id or @@id
	Uniques    [][]string // field names, from @unique and @@unique, in source order
	Pos        Pos
}

// Field returns the column field with the given name, or nil.
func (m *Model) Field(name string) *Field {
	for _, f := range m.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Field is a scalar or enum field of a model: one column.
type Field struct {
	Name      string
	Column    string // @map, or Name
	Type      string // a scalar type name (String, Int, ...) or an enum name
	Enum      *Enum  // set when Type names an enum
	Optional  bool   // `?`
	List      bool   // `[]` (scalar lists)
	Default   *Default
	UpdatedAt bool // @updatedAt
	Pos       Pos
}

// DefaultKind tells what a @default produces.
type DefaultKind int

const (
	DefaultValue         DefaultKind = iota // a literal: Value holds it as a Record value (string, int64, float64, bool, enum value name, time.Time, ...)
	DefaultNow                              // now()
	DefaultUUID                             // uuid()
	DefaultCUID                             // cuid()
	DefaultAutoincrement                    // autoincrement()
	DefaultOther                            // any other function (dbgenerated(), nanoid(), ...): accepted, not applied
)

// Default is a field's @default. It is schema information only: Validate
// never fills in a missing field from it.
type Default struct {
	Kind  DefaultKind
	Value any
}

// Relation is a many-to-one relation held by a model: its Fields reference
// Target's References.
type Relation struct {
	Name         string // the relation field's name, e.g. "user"
	RelationName string // @relation("name") or @relation(name: "name"), or ""
	Target       string // the referenced model's name
	Fields       []string
	References   []string
	Optional     bool   // the relation field is optional (`User?`)
	OnDelete     string // as written: Cascade, Restrict, NoAction, SetNull, SetDefault, or ""
	Pos          Pos
}

// Record is a validated record: field name to Go value. Values are
// string (String, enums), int64 (Int, BigInt), float64 (Float), bool,
// time.Time (DateTime, UTC), json.RawMessage (Json), []byte (Bytes),
// string (Decimal, canonical decimal text), []any for lists, nil for null.
type Record map[string]any

var (
	_ = json.RawMessage(nil)
	_ = time.Time{}
)
