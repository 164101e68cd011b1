package pull

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/syncplane/syncplane/core/changelog"
)

// cursorPrefix marks syncplane's union cursors (version 1).
const cursorPrefix = "c1."

// cursor is where a reader stands: a position per scope, or (for a plain
// changelog id from a single-scope pull or an older client) one id for every
// scope. A scope without a position starts from its beginning, which is how
// a scope granted to a subject later is read from its first entry.
type cursor struct {
	plain string            // a changelog id for every scope
	pos   map[string]string // scope → last id read
}

// decodeCursor reads "" (the start), a changelog id or a union cursor.
func decodeCursor(s string) (cursor, error) {
	switch {
	case s == "":
		return cursor{}, nil
	case changelog.Valid(s):
		return cursor{plain: s}, nil
	case strings.HasPrefix(s, cursorPrefix):
		b, err := base64.RawURLEncoding.DecodeString(s[len(cursorPrefix):])
		if err != nil {
			return cursor{}, errors.New("cursor is not base64url")
		}
		var pos map[string]string
		if err := json.Unmarshal(b, &pos); err != nil {
			return cursor{}, errors.New("cursor does not hold positions")
		}
		for sc, id := range pos {
			if sc == "" || !changelog.Valid(id) {
				return cursor{}, errors.New("cursor holds an invalid position")
			}
		}
		return cursor{pos: pos}, nil
	}
	return cursor{}, errors.New("not a changelog id or a union cursor")
}

// after is the id to read scope after.
func (c cursor) after(scope string) string {
	if id, ok := c.pos[scope]; ok {
		return id
	}
	return c.plain
}

// advance returns the cursor after reading entries (merged in id order)
// of scopes. Positions of scopes the reader no longer has are dropped; a
// plain cursor becomes a position for each scope.
func (c cursor) advance(scopes []string, entries []changelog.Entry) string {
	pos := make(map[string]string, len(scopes))
	for _, sc := range scopes {
		if id := c.after(sc); id != "" {
			pos[sc] = id
		}
	}
	for _, e := range entries {
		pos[e.ScopeKey] = e.ID
	}
	b, _ := json.Marshal(pos) // map keys marshal sorted: one cursor per state
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}
