package pull

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/syncdata"
)

// Union cursors. A union pull's position is one changelog id per scope:
// the last entry of that scope the reader has read (docs/architecture.md,
// "No skipped entries", says why nothing less will do). The cursor carries
// them in one of two shapes, both opaque to the client:
//
//   - "c1." + base64url(JSON {scope: id}): every position, when that JSON
//     takes at most maxInline bytes (a subject with a few dozen scopes);
//   - "c2." + base64url(JSON {"b": base, "d": {scope: id}}): the positions
//     stored under base (a row of the tenant's _pull_cursors, named by the
//     hash of its JSON), overridden by d; in d an empty id drops the base's
//     position of a scope the reader no longer has. d takes at most
//     maxInline bytes: when a page moves more positions than that, the
//     positions are stored as a new base and d starts empty.
//
// Under the scope "" (no scope has that key) a union cursor may carry the
// reader's start (see cursor.since): the id of the moment it began
// reading from an empty cursor.
//
// So a cursor takes at most maxCursorBytes, whatever the number of scopes,
// and a stored base is written once per maxInline bytes of moved positions.
const (
	cursorPrefix  = "c1."
	cursor2Prefix = "c2."
	// maxInline bounds the JSON of a c1 cursor's positions or of a c2
	// cursor's overrides.
	maxInline = 2048
	// maxCursorBytes bounds every cursor a page returns (a c2 cursor of
	// maxInline bytes of overrides is the longest), and a page reserves it.
	maxCursorBytes = len(cursor2Prefix) + (maxInline+len(`{"b":"","d":}`)+2*sha256.Size+3)*4/3 + 4
)

var baseID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// cursor is where a reader stands: a position per scope, or (for a plain
// changelog id from a single-scope pull or an older client) one id for every
// scope. A scope without a position starts from its beginning, which is how
// a scope granted to a subject later is read from its first entry.
type cursor struct {
	plain string            // a changelog id for every scope
	pos   map[string]string // scope → last id read
	// base names the stored positions (c2) that delta overrides; load
	// reads them into stored and merges both into pos.
	base   string
	delta  map[string]string
	stored map[string]string
}

// decodeCursor reads "" (the start), a changelog id or a union cursor. A
// c2 cursor's stored positions are not read here (see load).
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
		for _, id := range pos {
			if !changelog.Valid(id) {
				return cursor{}, errors.New("cursor holds an invalid position")
			}
		}
		return cursor{pos: pos}, nil
	case strings.HasPrefix(s, cursor2Prefix):
		b, err := base64.RawURLEncoding.DecodeString(s[len(cursor2Prefix):])
		if err != nil {
			return cursor{}, errors.New("cursor is not base64url")
		}
		var c struct {
			B string            `json:"b"`
			D map[string]string `json:"d"`
		}
		if err := json.Unmarshal(b, &c); err != nil || !baseID.MatchString(c.B) {
			return cursor{}, errors.New("cursor does not hold stored positions")
		}
		for _, id := range c.D {
			if id != "" && !changelog.Valid(id) {
				return cursor{}, errors.New("cursor holds an invalid position")
			}
		}
		return cursor{base: c.B, delta: c.D}, nil
	}
	return cursor{}, errors.New("not a changelog id or a union cursor")
}

// CursorStore keeps the positions of union cursors too large to carry
// (store.Tenant implements it).
type CursorStore interface {
	SaveCursor(ctx context.Context, id string, positions []byte) error
	// LoadCursor returns syncdata.ErrNoCursor when nothing is stored under id.
	LoadCursor(ctx context.Context, id string) ([]byte, error)
}

// load reads a c2 cursor's stored positions and merges its overrides into
// pos (a cursor of another shape is returned as it is). Positions that are
// not stored (another database's cursor, say) are a *RequestError.
func (c cursor) load(ctx context.Context, st CursorStore) (cursor, error) {
	if c.base == "" {
		return c, nil
	}
	b, err := st.LoadCursor(ctx, c.base)
	if errors.Is(err, syncdata.ErrNoCursor) {
		return c, &RequestError{Msg: fmt.Sprintf("cursor names positions %s that this server does not hold; pull again from the beginning, without lastChangelogId", c.base)}
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c.stored); err != nil {
		return c, fmt.Errorf("stored cursor positions %s: %w", c.base, err)
	}
	pos := make(map[string]string, len(c.stored))
	for sc, id := range c.stored {
		pos[sc] = id
	}
	for sc, id := range c.delta {
		if id == "" {
			delete(pos, sc)
		} else {
			pos[sc] = id
		}
	}
	c.pos = pos
	return c, nil
}

// since is the id of the moment the reader began reading from an empty
// cursor, when its cursor says so ("" for a changelog id, a cursor from
// before tombstones could be dropped, or the start itself). A tombstone
// older than that was written before the reader read anything, so the
// reader never had its record: dropping it cannot have hidden a delete
// from this reader (see Service.checkHorizons).
func (c cursor) since() string { return c.pos[""] }

// empty reports whether c is the start: no position at all.
func (c cursor) empty() bool { return c.plain == "" && len(c.pos) == 0 && c.base == "" }

// after is the id to read scope after.
func (c cursor) after(scope string) string {
	if id, ok := c.pos[scope]; ok {
		return id
	}
	return c.plain
}

// advance returns the positions after reading entries (merged in id order)
// of scopes. Positions of scopes the reader no longer has are dropped; a
// plain cursor becomes a position for each scope.
func (c cursor) advance(scopes []string, entries []changelog.Entry) map[string]string {
	pos := make(map[string]string, len(scopes))
	for _, sc := range scopes {
		if id := c.after(sc); id != "" {
			pos[sc] = id
		}
	}
	for _, e := range entries {
		pos[e.ScopeKey] = e.ID
	}
	if since := c.since(); since != "" {
		pos[""] = since
	}
	return pos
}

// encode returns the cursor of pos, which follows c: inline when pos is
// small, else as c's stored base with the positions that differ from the
// stored ones (all of them, not only those this page moved),
// else (the difference is too large, or c has no base) as a new base
// stored through st.
func (c cursor) encode(ctx context.Context, st CursorStore, pos map[string]string) (string, error) {
	b, _ := json.Marshal(pos) // map keys marshal sorted: one cursor per state
	if len(b) <= maxInline {
		return cursorPrefix + base64.RawURLEncoding.EncodeToString(b), nil
	}
	if c.base != "" {
		delta := map[string]string{}
		size := 0
		for sc, id := range pos {
			if c.stored[sc] != id {
				delta[sc] = id
				size += len(sc) + len(id) + 6
			}
		}
		for sc := range c.stored {
			if _, ok := pos[sc]; !ok {
				delta[sc] = ""
				size += len(sc) + 6
			}
		}
		if size <= maxInline {
			if d, _ := json.Marshal(delta); len(d) <= maxInline {
				return encode2(c.base, d), nil
			}
		}
	}
	sum := sha256.Sum256(b)
	id := hex.EncodeToString(sum[:])
	if err := st.SaveCursor(ctx, id, b); err != nil {
		return "", err
	}
	return encode2(id, []byte("{}")), nil
}

func encode2(base string, delta []byte) string {
	b := make([]byte, 0, len(delta)+len(base)+16)
	b = append(b, `{"b":"`...)
	b = append(b, base...)
	b = append(b, `","d":`...)
	b = append(b, delta...)
	b = append(b, '}')
	return cursor2Prefix + base64.RawURLEncoding.EncodeToString(b)
}
