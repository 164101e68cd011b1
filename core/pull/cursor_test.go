package pull

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/syncdata"
)

// memCursors keeps stored positions in memory and counts the saves.
type memCursors struct {
	rows  map[string][]byte
	saves int
}

func (m *memCursors) SaveCursor(_ context.Context, id string, positions []byte) error {
	if m.rows == nil {
		m.rows = map[string][]byte{}
	}
	m.saves++
	m.rows[id] = positions
	return nil
}

func (m *memCursors) LoadCursor(_ context.Context, id string) ([]byte, error) {
	b, ok := m.rows[id]
	if !ok {
		return nil, syncdata.ErrNoCursor
	}
	return b, nil
}

// next advances c over entries of scopes and decodes (and loads) the
// cursor it gives out, as the next request would.
func next(t *testing.T, st *memCursors, c cursor, scopes []string, entries []changelog.Entry) (string, cursor) {
	t.Helper()
	text, err := c.encode(t.Context(), st, c.advance(scopes, entries))
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeCursor(text)
	if err != nil {
		t.Fatalf("decodeCursor(%s): %v", text, err)
	}
	if d, err = d.load(t.Context(), st); err != nil {
		t.Fatalf("load(%s): %v", text, err)
	}
	return text, d
}

func TestCursor(t *testing.T) {
	t.Parallel()
	const (
		id1 = "019abcde-f012-7000-8000-000000000001"
		id2 = "019abcde-f012-7000-8000-000000000002"
		id3 = "019abcde-f012-7000-8000-000000000003"
	)
	t.Run("case=start", func(t *testing.T) {
		c, err := decodeCursor("")
		if err != nil || c.after("a") != "" {
			t.Fatalf("start cursor: %+v %v", c, err)
		}
		text, d := next(t, &memCursors{}, c, []string{"a", "b"}, []changelog.Entry{{ID: id1, ScopeKey: "a"}})
		if !strings.HasPrefix(text, cursorPrefix) || d.after("a") != id1 || d.after("b") != "" {
			t.Fatalf("after one entry of a: %s → %+v", text, d)
		}
	})
	t.Run("case=plain-id-applies-to-every-scope", func(t *testing.T) {
		c, err := decodeCursor(id2)
		if err != nil || c.after("a") != id2 || c.after("new") != id2 {
			t.Fatalf("%+v %v", c, err)
		}
		_, d := next(t, &memCursors{}, c, []string{"a", "b"}, []changelog.Entry{{ID: id3, ScopeKey: "b"}})
		if diff := cmp.Diff(map[string]string{"a": id2, "b": id3}, d.pos); diff != "" {
			t.Errorf("positions (-want +got):\n%s", diff)
		}
	})
	t.Run("case=revoked-scope-dropped-new-scope-from-start", func(t *testing.T) {
		st := &memCursors{}
		_, c := next(t, st, cursor{}, []string{"a", "old"}, []changelog.Entry{{ID: id1, ScopeKey: "a"}, {ID: id2, ScopeKey: "old"}})
		_, d := next(t, st, c, []string{"a", "new"}, nil)
		if diff := cmp.Diff(map[string]string{"a": id1}, d.pos); diff != "" {
			t.Errorf("positions (-want +got):\n%s", diff)
		}
		if d.after("new") != "" {
			t.Errorf("a new scope starts at %q, want its beginning", d.after("new"))
		}
	})
	t.Run("case=deterministic", func(t *testing.T) {
		entries := []changelog.Entry{{ID: id1, ScopeKey: "b"}, {ID: id2, ScopeKey: "a"}}
		a, _ := next(t, &memCursors{}, cursor{}, []string{"a", "b"}, entries)
		b, _ := next(t, &memCursors{}, cursor{}, []string{"b", "a"}, entries)
		if a != b {
			t.Errorf("same state, two cursors: %s %s", a, b)
		}
	})
	for name, bad := range map[string]string{
		"bad=not-base64":      cursorPrefix + "!!!",
		"bad=not-json":        cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte("nope")),
		"bad=bad-id":          cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"a":"x"}`)),
		"bad=start-not-an-id": cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"":"x"}`)),
		"bad=other":           "yesterday",
		"bad=c2-not-base64":   cursor2Prefix + "!!!",
		"bad=c2-no-base":      cursor2Prefix + base64.RawURLEncoding.EncodeToString([]byte(`{"d":{}}`)),
		"bad=c2-short-base":   cursor2Prefix + base64.RawURLEncoding.EncodeToString([]byte(`{"b":"abc","d":{}}`)),
		"bad=c2-bad-override": cursor2Prefix + base64.RawURLEncoding.EncodeToString([]byte(`{"b":"`+strings.Repeat("a", 64)+`","d":{"a":"x"}}`)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeCursor(bad); err == nil {
				t.Errorf("decodeCursor(%q) accepted", bad)
			}
		})
	}
}

// TestCursorManyScopes: the positions of 10,000 scopes travel as a stored
// base and a bounded set of overrides; the cursor's size does not depend on
// the number of scopes, and every position reads back.
func TestCursorManyScopes(t *testing.T) {
	t.Parallel()
	st := &memCursors{}
	now := time.Now()
	ids := make([]string, 0, 20001)
	last := ""
	for range cap(ids) {
		id, err := changelog.Next(last, now)
		if err != nil {
			t.Fatal(err)
		}
		ids, last = append(ids, id), id
	}
	scopes := make([]string, 10000)
	var first []changelog.Entry
	for i := range scopes {
		scopes[i] = fmt.Sprintf("team-%05d", i)
		first = append(first, changelog.Entry{ID: ids[i], ScopeKey: scopes[i]})
	}
	text, c := next(t, st, cursor{}, scopes, first)
	if !strings.HasPrefix(text, cursor2Prefix) || len(text) > maxCursorBytes || st.saves != 1 {
		t.Fatalf("cursor of 10,000 positions: %d bytes, %d saves: %.60s…", len(text), st.saves, text)
	}
	want := map[string]string{}
	for _, e := range first {
		want[e.ScopeKey] = e.ID
	}
	if diff := cmp.Diff(want, c.pos); diff != "" {
		t.Fatalf("positions read back (-want +got):\n%s", diff)
	}

	// A page that moves a few positions and loses a scope: overrides of
	// the same base, nothing stored.
	moved := []changelog.Entry{{ID: ids[10000], ScopeKey: "team-00007"}, {ID: ids[10001], ScopeKey: "team-09999"}}
	text2, c2 := next(t, st, c, scopes[1:], moved)
	if c2.base != c.base || st.saves != 1 || len(text2) > maxCursorBytes {
		t.Fatalf("a small move: base %s (was %s), %d saves, %d bytes", c2.base, c.base, st.saves, len(text2))
	}
	delete(want, "team-00000")
	want["team-00007"], want["team-09999"] = ids[10000], ids[10001]
	if diff := cmp.Diff(want, c2.pos); diff != "" {
		t.Fatalf("positions after a small move (-want +got):\n%s", diff)
	}
	if c2.after("team-00000") != "" {
		t.Errorf("a scope the reader lost keeps position %s", c2.after("team-00000"))
	}

	// The next small move keeps the overrides of the one before.
	text2b, c2b := next(t, st, c2, scopes[1:], []changelog.Entry{{ID: ids[20000], ScopeKey: "team-00008"}})
	want["team-00008"] = ids[20000]
	if c2b.base != c.base || st.saves != 1 || len(text2b) > maxCursorBytes {
		t.Fatalf("a second small move: base %s (was %s), %d saves", c2b.base, c.base, st.saves)
	}
	if diff := cmp.Diff(want, c2b.pos); diff != "" {
		t.Fatalf("positions after a second small move (-want +got):\n%s", diff)
	}
	c2 = c2b

	// A page that moves many positions: a new base, still a small cursor.
	var many []changelog.Entry
	for i := 0; i < 500; i++ {
		many = append(many, changelog.Entry{ID: ids[10002+i], ScopeKey: scopes[i*20]})
		want[scopes[i*20]] = ids[10002+i]
	}
	text3, c3 := next(t, st, c2, scopes, many)
	if c3.base == c2.base || st.saves != 2 || len(text3) > maxCursorBytes {
		t.Fatalf("a large move: base %s (was %s), %d saves, %d bytes", c3.base, c2.base, st.saves, len(text3))
	}
	if diff := cmp.Diff(want, c3.pos); diff != "" {
		t.Fatalf("positions after a large move (-want +got):\n%s", diff)
	}

	// Positions that are not stored (another database's cursor) are a
	// request error that says what to do.
	d, err := decodeCursor(text3)
	if err != nil {
		t.Fatal(err)
	}
	var re *RequestError
	if _, err := d.load(context.Background(), &memCursors{}); !errors.As(err, &re) || !strings.Contains(re.Msg, "from the beginning") {
		t.Errorf("unknown stored positions: %v", err)
	}
}
