package schema

import (
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// The grammar below is a syntax-only description of the Prisma schema
// language subset: it accepts any block attribute, field attribute and
// argument list. Meaning is given to the parse tree in build.go.

var prismaLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `//[^\n]*`},
	{Name: "BlockComment", Pattern: `/\*(?s:.*?)\*/`},
	{Name: "Whitespace", Pattern: `\s+`},
	{Name: "String", Pattern: `"(?:\\.|[^"\\\n])*"`},
	{Name: "Number", Pattern: `[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?`},
	{Name: "Ident", Pattern: `[A-Za-z_][A-Za-z0-9_]*`},
	{Name: "Punct", Pattern: `@@|[@{}()\[\],:=.?!]`},
})

var prismaParser = participle.MustBuild[astFile](
	participle.Lexer(prismaLexer),
	participle.Elide("Comment", "BlockComment", "Whitespace"),
	participle.UseLookahead(4),
)

type astFile struct {
	Blocks []*astBlock `parser:"@@*"`
}

type astBlock struct {
	Model  *astModel  `parser:"  @@"`
	Enum   *astEnum   `parser:"| @@"`
	Config *astConfig `parser:"| @@"`
}

// astIdent is an identifier with its position.
type astIdent struct {
	Pos   lexer.Position
	Value string `parser:"@Ident"`
}

// astModel is a model, view or composite type block.
type astModel struct {
	Kind    string       `parser:"@(\"model\" | \"view\" | \"type\")"`
	Name    astIdent     `parser:"@@"`
	Members []*astMember `parser:"\"{\" @@* \"}\""`
}

type astMember struct {
	BlockAttr *astAttr  `parser:"  \"@@\" @@"`
	Field     *astField `parser:"| @@"`
}

type astField struct {
	Name  astIdent   `parser:"@@"`
	Type  astType    `parser:"@@"`
	Attrs []*astAttr `parser:"( \"@\" @@ )*"`
}

type astType struct {
	Pos      lexer.Position
	Name     string      `parser:"@Ident"`
	Call     bool        `parser:"( @\"(\""`
	Args     []*astValue `parser:"  ( @@ ( \",\" @@ )* )? \")\" )?"`
	List     bool        `parser:"@( \"[\" \"]\" )?"`
	Optional bool        `parser:"@\"?\"?"`
}

// astAttr is an attribute without its leading @ or @@.
type astAttr struct {
	Pos  lexer.Position
	Name []string  `parser:"@Ident ( \".\" @Ident )*"`
	Call bool      `parser:"( @\"(\""`
	Args []*astArg `parser:"  ( @@ ( \",\" @@ )* )? \")\" )?"`
}

type astArg struct {
	Name  *astIdent `parser:"( @@ \":\" )?"`
	Value *astValue `parser:"@@"`
}

type astValue struct {
	Pos    lexer.Position
	String *string     `parser:"  @String"`
	Number *string     `parser:"| @Number"`
	Array  bool        `parser:"| ( @\"[\""`
	Elems  []*astValue `parser:"    ( @@ ( \",\" @@ )* )? \"]\" )"`
	Ref    []string    `parser:"| @Ident ( \".\" @Ident )*"`
	Call   bool        `parser:"  ( @\"(\""`
	Args   []*astArg   `parser:"    ( @@ ( \",\" @@ )* )? \")\" )?"`
}

type astEnum struct {
	Name    astIdent         `parser:"\"enum\" @@ \"{\""`
	Members []*astEnumMember `parser:"@@* \"}\""`
}

type astEnumMember struct {
	BlockAttr *astAttr      `parser:"  \"@@\" @@"`
	Value     *astEnumValue `parser:"| @@"`
}

type astEnumValue struct {
	Name  astIdent   `parser:"@@"`
	Attrs []*astAttr `parser:"( \"@\" @@ )*"`
}

// astConfig is a datasource or generator block: accepted and ignored.
type astConfig struct {
	Kind   string       `parser:"@(\"datasource\" | \"generator\")"`
	Name   astIdent     `parser:"@@ \"{\""`
	Assign []*astAssign `parser:"@@* \"}\""`
}

type astAssign struct {
	Key   astIdent `parser:"@@ \"=\""`
	Value astValue `parser:"@@"`
}

// name returns the attribute's name, e.g. "id" or "db.VarChar".
func (a *astAttr) name() string { return strings.Join(a.Name, ".") }

// positional returns the i-th positional argument, or nil.
func (a *astAttr) positional(i int) *astValue { return positionalArg(a.Args, i) }

// named returns the argument with the given name, or nil.
func (a *astAttr) named(name string) *astValue {
	for _, arg := range a.Args {
		if arg.Name != nil && arg.Name.Value == name {
			return arg.Value
		}
	}
	return nil
}

func positionalArg(args []*astArg, i int) *astValue {
	for _, arg := range args {
		if arg.Name != nil {
			continue
		}
		if i == 0 {
			return arg.Value
		}
		i--
	}
	return nil
}

// str returns the value of a string literal.
func (v *astValue) str() (string, bool) {
	if v == nil || v.String == nil {
		return "", false
	}
	s, err := strconv.Unquote(*v.String)
	if err != nil {
		s = (*v.String)[1 : len(*v.String)-1]
	}
	return s, true
}

// ident returns the name of a bare identifier (no call, no dots).
func (v *astValue) ident() (string, bool) {
	if v == nil || len(v.Ref) != 1 || v.Call {
		return "", false
	}
	return v.Ref[0], true
}

func toPos(p lexer.Position) Pos { return Pos{File: p.Filename, Line: p.Line, Column: p.Column} }
