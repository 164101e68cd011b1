package schema

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/participle/v2"
)

// File is one schema source file.
type File struct {
	Name string // used in error positions
	Src  []byte
}

// Load reads a schema from path: a .prisma file, or a folder whose
// *.prisma files, in it and in its subfolders (Prisma's multi-file layout,
// e.g. schema.prisma next to models/*.prisma), together form one schema.
// Hidden files and folders (names starting with a dot) are skipped. Error
// positions name the files as path joined with their path in the folder.
func Load(path string) (*Schema, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if !info.IsDir() {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		return Parse(File{Name: path, Src: src})
	}
	return LoadFS(os.DirFS(path), ".", path)
}

// LoadFS reads a schema from name in fsys, a .prisma file or a folder read
// as Load does. Error positions name the files as prefix joined with their
// path in fsys.
func LoadFS(fsys fs.FS, name, prefix string) (*Schema, error) {
	files, err := ReadFiles(fsys, name, prefix)
	if err != nil {
		return nil, err
	}
	return Parse(files...)
}

// ReadFiles reads the schema files at name in fsys: the file itself, or
// every *.prisma file of the folder and its subfolders except hidden ones,
// in path order. Each File is named prefix joined with its path in fsys.
func ReadFiles(fsys fs.FS, name, prefix string) ([]File, error) {
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if !info.IsDir() {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		return []File{{Name: filepath.Join(prefix, filepath.FromSlash(name)), Src: src}}, nil
	}
	var files []File
	err = fs.WalkDir(fsys, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != name && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || path.Ext(p) != ".prisma" {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files = append(files, File{Name: filepath.Join(prefix, filepath.FromSlash(p)), Src: src})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("schema: no .prisma files in %s", filepath.Join(prefix, filepath.FromSlash(name)))
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return files, nil
}

// Parse parses and checks a schema made of one or more files. Models and
// enums may refer to those of other files. Files are processed in name
// order. On failure the error is an ErrorList holding every error found,
// sorted by file, line and column; syntax errors (at most one per file)
// are reported alone, without the semantic checks.
func Parse(files ...File) (*Schema, error) {
	files = slices.Clone(files)
	slices.SortStableFunc(files, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	var errs ErrorList
	var asts []*astFile
	for _, f := range files {
		ast, err := prismaParser.ParseBytes(f.Name, f.Src)
		if err != nil {
			errs = append(errs, syntaxError(f.Name, err))
			continue
		}
		asts = append(asts, ast)
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	b := &builder{
		s:      &Schema{},
		decls:  map[string]decl{},
		models: map[string]*Model{},
		enums:  map[string]*Enum{},
	}
	b.build(asts)
	if len(b.errs) > 0 {
		return nil, b.errs.sorted()
	}
	return b.s, nil
}

var internalExpect = regexp.MustCompile(` \(expected [^)]*Ast[^)]*\)$`)

func syntaxError(file string, err error) *Error {
	var perr participle.Error
	if errors.As(err, &perr) {
		p := toPos(perr.Position())
		if p.File == "" {
			p.File = file
		}
		// Expectations naming grammar types (AstIdent, ...) would confuse.
		return &Error{Pos: p, Msg: internalExpect.ReplaceAllString(perr.Message(), "")}
	}
	return &Error{Pos: Pos{File: file, Line: 1, Column: 1}, Msg: err.Error()}
}

func (l ErrorList) sorted() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			strings.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
	return l
}

var scalarTypes = map[string]bool{
	String: true, Int: true, Float: true, Boolean: true, DateTime: true,
	JSON: true, Bytes: true, BigInt: true, Decimal: true,
}

var onDeleteActions = map[string]bool{
	"Cascade": true, "Restrict": true, "NoAction": true, "SetNull": true, "SetDefault": true,
}

// decl is a top-level name: a model, enum, composite type or view.
type decl struct {
	kind string
	pos  Pos
}

// pendingRelation is a relation field whose @relation is checked once all
// models are known.
type pendingRelation struct {
	model *Model
	field *astField
	attr  *astAttr // nil when the field has no @relation
}

type builder struct {
	s       *Schema
	errs    ErrorList
	decls   map[string]decl
	models  map[string]*Model
	enums   map[string]*Enum
	pending []pendingRelation
}

func (b *builder) errorf(p Pos, format string, args ...any) {
	b.errs = append(b.errs, &Error{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) build(asts []*astFile) {
	type modelAST struct {
		m   *Model
		ast *astModel
	}
	var modelASTs []modelAST
	for _, f := range asts {
		for _, blk := range f.Blocks {
			switch {
			case blk.Enum != nil:
				if e := b.enum(blk.Enum); e != nil {
					b.s.Enums = append(b.s.Enums, e)
					b.enums[e.Name] = e
				}
			case blk.Config != nil && blk.Config.Kind == "generator":
				b.generator(blk.Config)
			case blk.Model != nil:
				a := blk.Model
				if !b.declare(a.Kind, a.Name) || a.Kind != "model" {
					continue
				}
				m := &Model{Name: a.Name.Value, Table: a.Name.Value, Pos: toPos(a.Name.Pos)}
				b.s.Models = append(b.s.Models, m)
				b.models[m.Name] = m
				modelASTs = append(modelASTs, modelAST{m, a})
			}
		}
	}
	for _, ma := range modelASTs {
		b.model(ma.m, ma.ast)
	}
	for _, p := range b.pending {
		b.relation(p)
	}
	b.checkIDB()
}

// declare records a top-level name, reporting duplicates.
func (b *builder) declare(kind string, name astIdent) bool {
	if d, ok := b.decls[name.Value]; ok {
		b.errorf(toPos(name.Pos), "duplicate %s %q (already declared as %s at %s)", kind, name.Value, d.kind, d.pos)
		return false
	}
	b.decls[name.Value] = decl{kind: kind, pos: toPos(name.Pos)}
	return true
}

func (b *builder) enum(a *astEnum) *Enum {
	if !b.declare("enum", a.Name) {
		return nil
	}
	e := &Enum{Name: a.Name.Value, Pos: toPos(a.Name.Pos)}
	for _, mem := range a.Members {
		if mem.Value == nil {
			continue
		}
		v := mem.Value.Name
		if slices.Contains(e.Values, v.Value) {
			b.errorf(toPos(v.Pos), "duplicate value %q in enum %q", v.Value, e.Name)
			continue
		}
		e.Values = append(e.Values, v.Value)
	}
	if len(e.Values) == 0 {
		b.errorf(e.Pos, "enum %q has no values", e.Name)
	}
	return e
}

func (b *builder) model(m *Model, a *astModel) {
	seen := map[string]Pos{}
	relationFields := map[string]bool{}
	var idPos *Pos
	for _, mem := range a.Members {
		af := mem.Field
		if af == nil {
			continue
		}
		pos := toPos(af.Name.Pos)
		if first, ok := seen[af.Name.Value]; ok {
			b.errorf(pos, "duplicate field %q in model %q (first declared at %s)", af.Name.Value, m.Name, first)
			continue
		}
		seen[af.Name.Value] = pos
		t := af.Type
		tpos := toPos(t.Pos)
		switch {
		case t.Call && t.Name == "Unsupported":
			b.errorf(tpos, "field %q: type Unsupported is not supported", af.Name.Value)
		case t.Call:
			b.errorf(tpos, "field %q: unknown type %q", af.Name.Value, t.Name)
		case scalarTypes[t.Name] || b.enums[t.Name] != nil:
			f := &Field{
				Name: af.Name.Value, Column: af.Name.Value, Type: t.Name, Enum: b.enums[t.Name],
				Optional: t.Optional, List: t.List, Pos: pos,
			}
			m.Fields = append(m.Fields, f)
			b.fieldAttrs(m, f, af, &idPos)
		case b.models[t.Name] != nil:
			relationFields[af.Name.Value] = true
			p := pendingRelation{model: m, field: af}
			for _, at := range af.Attrs {
				switch at.name() {
				case "relation":
					p.attr = at
				case "id", "unique", "default", "updatedAt":
					b.errorf(toPos(at.Pos), "field %q: @%s is not valid on a relation field", af.Name.Value, at.name())
				}
			}
			b.pending = append(b.pending, p)
		case b.decls[t.Name].kind != "":
			b.errorf(tpos, "field %q: type %q is a %s, which is not supported", af.Name.Value, t.Name, b.decls[t.Name].kind)
		default:
			b.errorf(tpos, "field %q: unknown type %q", af.Name.Value, t.Name)
		}
	}
	for _, mem := range a.Members {
		at := mem.BlockAttr
		if at == nil {
			continue
		}
		switch at.name() {
		case "id":
			names := b.fieldList(m, at, relationFields)
			if idPos != nil {
				b.errorf(toPos(at.Pos), "model %q has both @id and @@id", m.Name)
				continue
			}
			p := toPos(at.Pos)
			idPos = &p
			if names != nil {
				m.PrimaryKey = names
				b.checkKeyFields(m, names, p)
			}
		case "unique":
			if names := b.fieldList(m, at, relationFields); names != nil {
				m.Uniques = append(m.Uniques, names)
			}
		case "map":
			if s, ok := at.positional(0).str(); ok {
				m.Table = s
			} else {
				b.errorf(toPos(at.Pos), "@@map needs a string argument")
			}
		}
	}
	if idPos == nil {
		b.errorf(m.Pos, "model %q has no @id or @@id", m.Name)
	}
}

// fieldList reads the field names of @@id or @@unique: the first positional
// argument or the named argument `fields`.
func (b *builder) fieldList(m *Model, at *astAttr, relationFields map[string]bool) []string {
	v := at.positional(0)
	if v == nil {
		v = at.named("fields")
	}
	if v == nil || !v.Array || len(v.Elems) == 0 {
		b.errorf(toPos(at.Pos), "@@%s needs a non-empty list of fields", at.name())
		return nil
	}
	var names []string
	ok := true
	for _, el := range v.Elems {
		if len(el.Ref) != 1 {
			b.errorf(toPos(el.Pos), "@@%s: expected a field name", at.name())
			ok = false
			continue
		}
		name := el.Ref[0]
		switch {
		case m.Field(name) != nil:
			names = append(names, name)
		case relationFields[name]:
			b.errorf(toPos(el.Pos), "@@%s: field %q is a relation field, not a scalar field", at.name(), name)
			ok = false
		default:
			b.errorf(toPos(el.Pos), "@@%s: unknown field %q in model %q", at.name(), name, m.Name)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return names
}

func (b *builder) checkKeyFields(m *Model, names []string, p Pos) {
	for _, n := range names {
		if f := m.Field(n); f.Optional || f.List {
			b.errorf(p, "primary key field %q of model %q must be required and not a list", n, m.Name)
		}
	}
}

func (b *builder) fieldAttrs(m *Model, f *Field, af *astField, idPos **Pos) {
	for _, at := range af.Attrs {
		p := toPos(at.Pos)
		switch at.name() {
		case "id":
			if *idPos != nil {
				b.errorf(p, "model %q has more than one @id", m.Name)
				continue
			}
			*idPos = &p
			m.PrimaryKey = []string{f.Name}
			b.checkKeyFields(m, m.PrimaryKey, p)
		case "unique":
			m.Uniques = append(m.Uniques, []string{f.Name})
		case "map":
			if s, ok := at.positional(0).str(); ok {
				f.Column = s
			} else {
				b.errorf(p, "@map needs a string argument")
			}
		case "updatedAt":
			if f.Type != DateTime || f.List {
				b.errorf(p, "field %q: @updatedAt is only valid on DateTime fields", f.Name)
			}
			f.UpdatedAt = true
		case "default":
			b.fieldDefault(f, at)
		case "relation":
			b.errorf(p, "field %q: @relation is only valid on relation fields", f.Name)
		}
	}
}

func (b *builder) fieldDefault(f *Field, at *astAttr) {
	v := at.positional(0)
	if v == nil {
		v = at.named("value")
	}
	if v == nil {
		b.errorf(toPos(at.Pos), "field %q: @default needs a value", f.Name)
		return
	}
	vpos := toPos(v.Pos)
	if v.Call {
		fn := strings.Join(v.Ref, ".")
		var kind DefaultKind
		var ok bool
		switch fn {
		case "now":
			kind, ok = DefaultNow, f.Type == DateTime
		case "uuid":
			kind, ok = DefaultUUID, f.Type == String
		case "cuid":
			kind, ok = DefaultCUID, f.Type == String
		case "autoincrement":
			kind, ok = DefaultAutoincrement, f.Type == Int || f.Type == BigInt
		default:
			kind, ok = DefaultOther, true
		}
		if !ok || (f.List && kind != DefaultOther) {
			b.errorf(vpos, "field %q: @default(%s()) is not valid for type %s", f.Name, fn, typeName(f))
			return
		}
		f.Default = &Default{Kind: kind}
		return
	}
	raw, err := literalJSON(v, f.Type == JSON && !f.List, f.Enum != nil)
	// Payloads may carry epoch numbers (z.coerce.date); a schema's
	// DateTime default must be a string, as in Prisma.
	dateTimeErr := errors.New("must be an ISO-8601 date-time string")
	if err == nil && f.Type == DateTime && hasNumber(v) {
		err = dateTimeErr
	}
	if err == nil {
		var val any
		if f.List {
			val, err = f.listValue(raw)
		} else if val, err = f.scalarValue(raw); err != nil && f.Type == DateTime {
			err = dateTimeErr
		}
		if err == nil {
			f.Default = &Default{Kind: DefaultValue, Value: val}
			return
		}
	}
	if id, ok := v.ident(); ok && f.Enum != nil && !f.List {
		b.errorf(vpos, "field %q: @default value %q is not a value of enum %q", f.Name, id, f.Enum.Name)
		return
	}
	b.errorf(vpos, "field %q: invalid @default for type %s: %v", f.Name, typeName(f), err)
}

// hasNumber reports whether a literal is or contains a number.
func hasNumber(v *astValue) bool {
	if v.Number != nil {
		return true
	}
	return slices.ContainsFunc(v.Elems, hasNumber)
}

func typeName(f *Field) string {
	if f.List {
		return f.Type + "[]"
	}
	return f.Type
}

// literalJSON turns a default literal into the JSON a client would send
// for it, so that defaults are checked by the validator's own rules. For
// Json fields a string literal holds the JSON text itself; for enum fields a
// bare identifier names a value.
func literalJSON(v *astValue, jsonField, enumField bool) (json.RawMessage, error) {
	switch {
	case v.String != nil:
		s, _ := v.str()
		if jsonField {
			if !json.Valid([]byte(s)) {
				return nil, errors.New("string is not valid JSON")
			}
			return json.RawMessage(s), nil
		}
		return json.Marshal(s)
	case v.Number != nil:
		n := strings.TrimPrefix(*v.Number, "+")
		return json.RawMessage(n), nil
	case v.Array:
		parts := make([]string, len(v.Elems))
		for i, el := range v.Elems {
			raw, err := literalJSON(el, false, enumField)
			if err != nil {
				return nil, err
			}
			parts[i] = string(raw)
		}
		return json.RawMessage("[" + strings.Join(parts, ",") + "]"), nil
	}
	id, ok := v.ident()
	switch {
	case ok && (id == "true" || id == "false"):
		return json.RawMessage(id), nil
	case ok && enumField:
		return json.Marshal(id)
	}
	return nil, fmt.Errorf("unexpected %s", strings.Join(v.Ref, "."))
}

func (b *builder) relation(p pendingRelation) {
	af, m := p.field, p.model
	target := b.models[af.Type.Name]
	pos := toPos(af.Name.Pos)
	var fieldsV, refsV *astValue
	rel := &Relation{Name: af.Name.Value, Target: target.Name, Optional: af.Type.Optional, Pos: pos}
	if at := p.attr; at != nil {
		if s, ok := at.positional(0).str(); ok {
			rel.RelationName = s
		} else if s, ok := at.named("name").str(); ok {
			rel.RelationName = s
		}
		fieldsV, refsV = at.named("fields"), at.named("references")
		if v := at.named("onDelete"); v != nil {
			if id, ok := v.ident(); ok && onDeleteActions[id] {
				rel.OnDelete = id
			} else {
				b.errorf(toPos(v.Pos), "field %q: invalid onDelete action", af.Name.Value)
			}
		}
	}
	if fieldsV == nil && refsV == nil {
		return // the other side of a relation: nothing to record
	}
	at := p.attr
	if fieldsV == nil || refsV == nil {
		b.errorf(toPos(at.Pos), "field %q: @relation needs both fields and references", af.Name.Value)
		return
	}
	if af.Type.List {
		b.errorf(toPos(af.Type.Pos), "field %q: a list relation field cannot have fields and references", af.Name.Value)
		return
	}
	ok := true
	names := func(v *astValue, what string) []string {
		if !v.Array || len(v.Elems) == 0 {
			b.errorf(toPos(v.Pos), "field %q: @relation %s must be a non-empty list of field names", af.Name.Value, what)
			ok = false
			return nil
		}
		var out []string
		for _, el := range v.Elems {
			id, isID := el.ident()
			if !isID {
				b.errorf(toPos(el.Pos), "field %q: @relation %s: expected a field name", af.Name.Value, what)
				ok = false
				continue
			}
			out = append(out, id)
		}
		return out
	}
	rel.Fields, rel.References = names(fieldsV, "fields"), names(refsV, "references")
	if !ok {
		return
	}
	for i, n := range rel.Fields {
		if m.Field(n) != nil {
			continue
		}
		ok = false
		if b.isRelationField(m, n) {
			b.errorf(toPos(fieldsV.Elems[i].Pos), "field %q: @relation fields: %q is not a scalar field", af.Name.Value, n)
		} else {
			b.errorf(toPos(fieldsV.Elems[i].Pos), "field %q: @relation fields: unknown field %q in model %q", af.Name.Value, n, m.Name)
		}
	}
	for i, n := range rel.References {
		if target.Field(n) == nil {
			ok = false
			b.errorf(toPos(refsV.Elems[i].Pos), "field %q: @relation references: unknown field %q in model %q", af.Name.Value, n, target.Name)
		}
	}
	if !ok {
		return
	}
	if len(rel.Fields) != len(rel.References) {
		b.errorf(toPos(at.Pos), "field %q: @relation has %d fields but %d references", af.Name.Value, len(rel.Fields), len(rel.References))
		return
	}
	for i, n := range rel.Fields {
		f, r := m.Field(n), target.Field(rel.References[i])
		if f.Type != r.Type || f.List || r.List {
			b.errorf(toPos(fieldsV.Elems[i].Pos), "field %q: @relation field %q has type %s but references %s.%s of type %s",
				af.Name.Value, n, typeName(f), target.Name, r.Name, typeName(r))
			ok = false
		}
	}
	if !sameSet(rel.References, target.PrimaryKey) && !slices.ContainsFunc(target.Uniques, func(u []string) bool { return sameSet(rel.References, u) }) {
		b.errorf(toPos(refsV.Pos), "field %q: @relation references must be the primary key or a unique field set of model %q", af.Name.Value, target.Name)
		ok = false
	}
	if ok {
		m.Relations = append(m.Relations, rel)
	}
}

// isRelationField reports whether model m has a relation field with the given name.
func (b *builder) isRelationField(m *Model, name string) bool {
	for _, p := range b.pending {
		if p.model == m && p.field.Name.Value == name {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
