package schema

import (
	"regexp"
	"slices"
	"strings"
)

// IDBProvider is the provider of prisma-idb's generator block. A provider
// that is a path or package name ending in it ("../node_modules/.bin/
// idb-client-generator", "@prisma-idb/idb-client-generator") counts too.
const IDBProvider = "idb-client-generator"

// The client's bookkeeping: prisma-idb requires a model and an enum of
// these names when outboxSync is on. They describe the client's copy of the
// changelog, are never synced and get no table ([BuildOwnership] leaves
// the model out whatever the exclude list says).
const (
	ChangelogModel      = "Changelog"
	ChangeOperationEnum = "ChangeOperation"
)

// IDBGenerator is the schema's prisma-idb generator block (provider
// [IDBProvider]): what it says about syncing. Values not stated are zero.
type IDBGenerator struct {
	Name string // the block's name, e.g. "prismaIDB"
	Pos  Pos    // of the name

	RootModel    string // rootModel; "" when not stated
	RootModelPos Pos

	// Exclude and Include are the block's model patterns as written
	// ("*" matches any run of characters), nil when not stated. A string
	// value is split at commas, as prisma-idb does. Include ["*"] is
	// recorded as nil (every model).
	Exclude    []string
	ExcludePos Pos
	Include    []string
	IncludePos Pos
}

// IsBookkeeping reports whether a model or enum name is the client's
// bookkeeping (ChangelogModel, ChangeOperationEnum).
func IsBookkeeping(name string) bool {
	return name == ChangelogModel || name == ChangeOperationEnum
}

// Excludes reports whether the generator leaves the model out of the
// client it generates: a model not matching Include when Include is
// stated, else a model matching Exclude. The bookkeeping model is left out
// by prisma-idb in any case; Excludes does not special-case it.
func (g *IDBGenerator) Excludes(model string) bool {
	if g.Include != nil {
		return !slices.ContainsFunc(g.Include, func(p string) bool { return globMatch(p, model) })
	}
	return slices.ContainsFunc(g.Exclude, func(p string) bool { return globMatch(p, model) })
}

// Excluded lists, in source order, the models of s that the generator
// leaves out, except the bookkeeping model. It is empty when g is nil.
func (g *IDBGenerator) Excluded(s *Schema) []string {
	if g == nil {
		return nil
	}
	var out []string
	for _, m := range s.Models {
		if m.Name != ChangelogModel && g.Excludes(m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// globMatch matches prisma-idb's model patterns: "*" is any run of
// characters, everything else is literal.
func globMatch(pattern, name string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == name
	}
	parts := strings.Split(pattern, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(name)
}

// isIDBProvider reports whether a generator's provider is prisma-idb's.
func isIDBProvider(p string) bool {
	if !strings.HasSuffix(p, IDBProvider) {
		return false
	}
	rest := p[:len(p)-len(IDBProvider)]
	return rest == "" || strings.HasSuffix(rest, "/") || strings.HasSuffix(rest, `\`) || strings.HasSuffix(rest, " ")
}

// generator records a generator block when it is prisma-idb's. Its model
// names are checked in checkIDB, once every model is known.
func (b *builder) generator(a *astConfig) {
	var provider *astValue
	for _, as := range a.Assign {
		if as.Key.Value == "provider" {
			provider = &as.Value
		}
	}
	p, ok := provider.str()
	if !ok || !isIDBProvider(p) {
		return
	}
	pos := toPos(a.Name.Pos)
	if g := b.s.IDB; g != nil {
		b.errorf(pos, "generator %s: a second %s block (the first is generator %s at %s)", a.Name.Value, IDBProvider, g.Name, g.Pos)
		return
	}
	g := &IDBGenerator{Name: a.Name.Value, Pos: pos}
	for _, as := range a.Assign {
		v := &as.Value
		vpos := toPos(v.Pos)
		switch as.Key.Value {
		case "rootModel":
			if s, ok := v.str(); ok && s != "" {
				g.RootModel, g.RootModelPos = s, vpos
			} else {
				b.errorf(vpos, "generator %s: rootModel must be a model name in quotes", g.Name)
			}
		case "exclude", "include":
			list, ok := patternList(v)
			if !ok {
				b.errorf(vpos, `generator %s: %s must be a list of model names in quotes, e.g. ["Session", "Account"]`, g.Name, as.Key.Value)
				continue
			}
			if as.Key.Value == "exclude" {
				g.Exclude, g.ExcludePos = list, vpos
			} else if !slices.Equal(list, []string{"*"}) {
				g.Include, g.IncludePos = list, vpos
			}
		}
	}
	if g.Include != nil && len(g.Exclude) > 0 {
		b.errorf(g.IncludePos, "generator %s: include and exclude are mutually exclusive; state one of them", g.Name)
	}
	b.s.IDB = g
}

// patternList reads a generator's model list: a list of strings, or one
// string of comma-separated names.
func patternList(v *astValue) ([]string, bool) {
	if s, ok := v.str(); ok {
		var out []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, true
	}
	if !v.Array {
		return nil, false
	}
	out := []string{}
	for _, el := range v.Elems {
		s, ok := el.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// checkIDB checks the generator's rootModel against the models.
func (b *builder) checkIDB() {
	g := b.s.IDB
	if g == nil || g.RootModel == "" {
		return
	}
	switch m := b.models[g.RootModel]; {
	case m == nil:
		b.errorf(g.RootModelPos, "generator %s: rootModel %q is not a model of the schema", g.Name, g.RootModel)
	case g.Excludes(g.RootModel) || g.RootModel == ChangelogModel:
		b.errorf(g.RootModelPos, "generator %s: rootModel %q is excluded from the client", g.Name, g.RootModel)
	}
}
