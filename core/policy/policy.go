package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/util"

	"github.com/syncplane/syncplane/policies"
)

// Actions a request may carry.
const (
	ActCreate = "create"
	ActUpdate = "update"
	ActDelete = "delete"
	ActPull   = "pull"
)

// Self is the scope value in a p line that matches the scope equal to the
// requesting subject.
const Self = "$self"

// LineError reports a problem in a policy file. Line is 1-based; it is 0 when
// the problem concerns the whole file (for example an empty policy).
type LineError struct {
	File    string
	Line    int
	Problem string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Problem)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Problem)
}

// Line is one line of a policy file: the file's name as given to New, the
// 1-based line number and the line's text without surrounding blanks.
type Line struct {
	File string
	Line int
	Text string
}

// String formats the line as "file:line: text".
func (l Line) String() string { return fmt.Sprintf("%s:%d: %s", l.File, l.Line, l.Text) }

// rule is a parsed p or g line: its fields after the line type, and where
// it was written (the first occurrence when the file repeats it).
type rule struct {
	fields []string
	line   Line
}

// Enforcer answers policy questions for one tenant. It is immutable once
// built and safe for concurrent use; to change the policy, build a new one.
//
// Casbin decides every request, but not over the whole policy: idx picks the
// rules that can match the requesting subject and its token role, and
// Casbin walks only those (see index).
type Enforcer struct {
	// p and g are the rules in file order; pLine finds a p rule's line from
	// the fields Casbin reports as the deciding rule.
	p, g  []rule
	pLine map[string]Line
	idx   *index
	// cache remembers decisions; nil disables it (tests measure the cold
	// cost that way).
	cache *decisionCache
}

// New parses policy, the content of a Casbin CSV policy file, and builds an
// Enforcer from it and the platform model (policies.Model). source names the
// file in errors, which read "source:line: problem", and in the Lines that
// Explain returns.
//
// Blank lines and lines starting with # are ignored. Every other line must
// be "p, sub, scope, obj, act, eft" with act one of create, update, delete,
// pull or * and eft allow or deny, or "g, user, role, scope"; no field may be
// empty. The scope of a g line may be a pattern ("org-*"); its user and role
// are literal, and $self is only valid in the scope field of a p line. A *
// in a pattern must be its last character. A policy without any p line is
// refused. Repeated lines count once. All malformed lines are reported,
// joined with errors.Join; each is a *LineError.
func New(policy []byte, source string) (*Enforcer, error) {
	p, g, err := parse(policy, source)
	if err != nil {
		return nil, err
	}
	m, err := model.NewModelFromString(policies.Model())
	if err != nil {
		return nil, fmt.Errorf("policy: platform model: %w", err)
	}
	e := &Enforcer{p: p, g: g, pLine: make(map[string]Line, len(p)), idx: newIndex(m, p, g), cache: newDecisionCache()}
	for _, r := range p {
		e.pLine[ruleKey(r.fields)] = r.line
	}
	// Casbin builds its enforcers lazily, per subject (see index); refuse a
	// model it cannot build one from here rather than in Allow.
	if _, err := newCasbin(m, nil, nil); err != nil {
		return nil, fmt.Errorf("policy: %s: %w", source, err)
	}
	return e, nil
}

// Default returns an Enforcer for the embedded default policy
// (policies.DefaultPolicy). It panics only if the embedded files are broken,
// which the package tests rule out.
func Default() *Enforcer {
	e, err := New(policies.DefaultPolicy(), "policies/default.csv")
	if err != nil {
		panic(fmt.Sprintf("policy: embedded default policy is broken: %v", err))
	}
	return e
}

// checkRequest refuses unknown actions and reports whether the request can
// match any line at all (an empty subject, scope or model cannot).
func checkRequest(sub, scope, model, act string) (bool, error) {
	switch act {
	case ActCreate, ActUpdate, ActDelete, ActPull:
	default:
		return false, fmt.Errorf("policy: unknown action %q", act)
	}
	return sub != "" && scope != "" && model != "", nil
}

// Allow reports whether sub may perform act on records of model in scope.
// roles are the roles the subject's token grants, by scope (nil for none);
// only the role for scope takes part. act must be one of create, update,
// delete, pull; anything else is an error. An empty subject, scope or model
// is denied.
//
// Decisions are cached per (sub, token role, scope, model, act); the cache
// is safe because the Enforcer never changes, and bounded (it is emptied
// when it reaches 100,000 entries). So is the Casbin enforcer holding the
// rules for (sub, token role), built at its first request (emptied at
// 10,000 entries).
func (e *Enforcer) Allow(sub string, roles map[string]string, scope, model, act string) (bool, error) {
	if ok, err := checkRequest(sub, scope, model, act); !ok || err != nil {
		return false, err
	}
	key := decisionKey{sub: sub, role: roles[scope], scope: scope, model: model, act: act}
	if ok, hit := e.cache.get(key); hit {
		return ok, nil
	}
	n, err := e.narrowFor(key.sub, key.role)
	if err != nil {
		return false, err
	}
	ok, err := n.enforce(key.sub, key.role, key.scope, key.model, key.act)
	if err != nil {
		return false, fmt.Errorf("policy: enforce: %w", err)
	}
	e.cache.put(key, ok)
	return ok, nil
}

// Explain makes the same decision as Allow and returns the policy lines that
// made it: when a deny line wins, that deny line; when the request is
// allowed, the allow line that matched; none when no line matched and the
// request is denied by default. When the deciding p line names a role, the g
// lines that give sub that role in scope follow it (none when only the
// token grants the role). Where several lines match, the first in the file
// is reported.
func (e *Enforcer) Explain(sub string, roles map[string]string, scope, model, act string) (allowed bool, lines []Line, err error) {
	if ok, err := checkRequest(sub, scope, model, act); !ok || err != nil {
		return false, nil, err
	}
	role := roles[scope]
	n, err := e.narrowFor(sub, role)
	if err != nil {
		return false, nil, err
	}
	ok, rule, err := n.enforceEx(sub, role, scope, model, act)
	if err != nil {
		return false, nil, fmt.Errorf("policy: enforce: %w", err)
	}
	if len(rule) == 0 {
		return ok, nil, nil
	}
	l, known := e.pLine[ruleKey(rule)]
	if !known {
		return false, nil, fmt.Errorf("policy: deciding rule %q has no line", rule)
	}
	lines = append(lines, l)
	if role := rule[0]; role != "*" && role != sub {
		for _, i := range e.idx.gByUser[sub] {
			if g := e.g[i]; g.fields[1] == role && util.KeyMatch(scope, g.fields[2]) {
				lines = append(lines, g.line)
			}
		}
	}
	return ok, lines, nil
}

// Scopes returns the scopes the policy names for sub, for the pull service
// to enumerate the scopes a subject may read: the scope of every g line
// whose user is sub, and of every allow line whose subject is sub or "*".
// $self becomes sub. Literal scopes are in scopes, patterns (containing *)
// in patterns; both sorted without duplicates.
//
// The result is a superset of the scopes where Allow can grant sub anything
// through the policy file, and the caller filters every candidate through
// Allow. It leaves out what cannot add a scope: deny lines; and the scopes
// of lines naming a role, because a role (held directly or through other
// roles) only reaches scopes matched by one of sub's own g lines, which are
// in the result already. The scopes of the token's roles are the caller's
// to add.
func (e *Enforcer) Scopes(sub string) (scopes, patterns []string) {
	if sub == "" {
		return nil, nil
	}
	add := func(scope string) {
		switch {
		case scope == Self:
			scopes = append(scopes, sub)
		case strings.Contains(scope, "*"):
			patterns = append(patterns, scope)
		default:
			scopes = append(scopes, scope)
		}
	}
	for _, i := range e.idx.gByUser[sub] {
		add(e.g[i].fields[2])
	}
	for _, i := range slices.Concat(e.idx.anyone, e.idx.bySub[sub]) {
		if p := e.p[i]; p.fields[4] == "allow" {
			add(p.fields[1])
		}
	}
	slices.Sort(scopes)
	slices.Sort(patterns)
	return slices.Compact(scopes), slices.Compact(patterns)
}

func ruleKey(fields []string) string { return strings.Join(fields, "\x00") }

// parse turns policy lines into rules, reporting every malformed line.
func parse(policy []byte, source string) (p, g []rule, err error) {
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &LineError{File: source, Line: line, Problem: fmt.Sprintf(format, args...)})
	}
	seen := make(map[string]bool)
	for i, raw := range strings.Split(string(policy), "\n") {
		n := i + 1
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		for j := range fields {
			fields[j] = strings.TrimSpace(fields[j])
		}
		if problem := checkFields(fields); problem != "" {
			fail(n, "%s", problem)
			continue
		}
		key := ruleKey(fields)
		if seen[key] {
			continue
		}
		seen[key] = true
		r := rule{fields: fields[1:], line: Line{File: source, Line: n, Text: text}}
		if fields[0] == "p" {
			p = append(p, r)
		} else {
			g = append(g, r)
		}
	}
	if len(errs) == 0 && len(p) == 0 {
		fail(0, "policy has no p lines")
	}
	if len(errs) > 0 {
		if len(errs) == 1 {
			return nil, nil, errs[0]
		}
		return nil, nil, errors.Join(errs...)
	}
	return p, g, nil
}

// checkFields returns what is wrong with the fields of a line, or "".
func checkFields(fields []string) string {
	for j, f := range fields {
		if f == "" {
			return fmt.Sprintf("field %d is empty", j+1)
		}
		if strings.ContainsAny(f, "\"'`") {
			return fmt.Sprintf("field %d (%s) contains a quote; fields are taken literally and need none", j+1, f)
		}
	}
	switch fields[0] {
	case "p":
		if len(fields) != 6 {
			return fmt.Sprintf("p line needs 5 fields (sub, scope, model, action, effect), got %d", len(fields)-1)
		}
		sub, scope, obj, act, eft := fields[1], fields[2], fields[3], fields[4], fields[5]
		switch act {
		case ActCreate, ActUpdate, ActDelete, ActPull, "*":
		default:
			return fmt.Sprintf("unknown action %q (want create, update, delete, pull or *)", act)
		}
		if eft != "allow" && eft != "deny" {
			return fmt.Sprintf("unknown effect %q (want allow or deny)", eft)
		}
		if sub == Self || obj == Self {
			return Self + " is only valid in the scope field"
		}
		if sub != "*" && strings.Contains(sub, "*") {
			return fmt.Sprintf("subject %q: a subject is a literal id, a role or * (anyone), not a pattern", sub)
		}
		for _, f := range []string{scope, obj} {
			if problem := checkPattern(f); problem != "" {
				return problem
			}
		}
	case "g":
		if len(fields) != 4 {
			return fmt.Sprintf("g line needs 3 fields (user, role, scope), got %d", len(fields)-1)
		}
		if slices.Contains(fields[1:], Self) {
			return "g line: " + Self + " is only valid in the scope field of a p line"
		}
		if strings.Contains(fields[1]+fields[2], "*") {
			return "g line: user and role are literal names, not patterns (only the scope may be a pattern)"
		}
		return checkPattern(fields[3])
	default:
		return fmt.Sprintf("unknown line type %q (want p or g)", fields[0])
	}
	return ""
}

// checkPattern refuses a * before the end of a pattern: keyMatch ignores
// everything after the first *, so "org-*-eu" would match "org-1-us".
func checkPattern(f string) string {
	if i := strings.Index(f, "*"); i >= 0 && i != len(f)-1 {
		return fmt.Sprintf("pattern %q: * may only end a pattern (as in org-*)", f)
	}
	return ""
}
