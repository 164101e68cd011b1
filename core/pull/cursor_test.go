package pull

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
)

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
		next := c.advance([]string{"a", "b"}, []changelog.Entry{{ID: id1, ScopeKey: "a"}})
		d, err := decodeCursor(next)
		if err != nil || d.after("a") != id1 || d.after("b") != "" {
			t.Fatalf("after one entry of a: %s → %+v %v", next, d, err)
		}
	})
	t.Run("case=plain-id-applies-to-every-scope", func(t *testing.T) {
		c, err := decodeCursor(id2)
		if err != nil || c.after("a") != id2 || c.after("new") != id2 {
			t.Fatalf("%+v %v", c, err)
		}
		d, _ := decodeCursor(c.advance([]string{"a", "b"}, []changelog.Entry{{ID: id3, ScopeKey: "b"}}))
		if diff := cmp.Diff(map[string]string{"a": id2, "b": id3}, d.pos); diff != "" {
			t.Errorf("positions (-want +got):\n%s", diff)
		}
	})
	t.Run("case=revoked-scope-dropped-new-scope-from-start", func(t *testing.T) {
		c, _ := decodeCursor(cursor{}.advance([]string{"a", "old"}, []changelog.Entry{{ID: id1, ScopeKey: "a"}, {ID: id2, ScopeKey: "old"}}))
		d, _ := decodeCursor(c.advance([]string{"a", "new"}, nil))
		if diff := cmp.Diff(map[string]string{"a": id1}, d.pos); diff != "" {
			t.Errorf("positions (-want +got):\n%s", diff)
		}
		if d.after("new") != "" {
			t.Errorf("a new scope starts at %q, want its beginning", d.after("new"))
		}
	})
	t.Run("case=deterministic", func(t *testing.T) {
		entries := []changelog.Entry{{ID: id1, ScopeKey: "b"}, {ID: id2, ScopeKey: "a"}}
		if a, b := (cursor{}).advance([]string{"a", "b"}, entries), (cursor{}).advance([]string{"b", "a"}, entries); a != b {
			t.Errorf("same state, two cursors: %s %s", a, b)
		}
	})
	for name, bad := range map[string]string{
		"bad=not-base64":  cursorPrefix + "!!!",
		"bad=not-json":    cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte("nope")),
		"bad=bad-id":      cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"a":"x"}`)),
		"bad=empty-scope": cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"":"`+id1+`"}`)),
		"bad=other":       "yesterday",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeCursor(bad); err == nil {
				t.Errorf("decodeCursor(%q) accepted", bad)
			}
		})
	}
}
