package tenant

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// TestReaderScopes: a validator's reads see the tenant's committed records
// of the batch's scopes only.
func TestReaderScopes(t *testing.T) {
	t.Parallel()
	for _, db := range storetest.Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tn, err := LoadDemo(ctx, []byte(strings.Repeat("k", 32)), Options{Store: db.Open(t), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			const ts = `"2026-11-25T10:00:00.000Z"`
			for _, u := range []string{"u1", "u2"} {
				events := []push.Event{
					{ID: u + "-e1", EntityType: "User", Operation: "create", Payload: json.RawMessage(`{"id":"` + u + `","name":"n","email":"` + u + `@x","emailVerified":false,"image":null,"createdAt":` + ts + `,"updatedAt":` + ts + `,"isAnonymous":null}`)},
					{ID: u + "-e2", EntityType: "Board", Operation: "create", Payload: json.RawMessage(`{"id":"` + u + `-b","name":"Q4","createdAt":` + ts + `,"userId":"` + u + `"}`)},
				}
				res, err := tn.Push.Push(ctx, u, nil, events)
				if err != nil || res[1].Error != nil {
					t.Fatalf("seed %s: %v %+v", u, err, res)
				}
			}
			r := reader{sch: tn.Schema, own: tn.Own, st: tn.Store}
			got, err := r.Find(ctx, []string{"u1"}, "Board", map[string]any{"name": "Q4"}, 10)
			if err != nil || len(got) != 1 || !strings.Contains(string(got[0]), `"userId":"u1"`) {
				t.Errorf("Find in u1's scope: %s %v", got, err)
			}
			if n, err := r.Count(ctx, []string{"u1", "u2"}, "Board", map[string]any{"name": "Q4"}); err != nil || n != 2 {
				t.Errorf("Count in both scopes: %d %v", n, err)
			}
			if n, err := r.Count(ctx, []string{"u3"}, "Board", map[string]any{}); err != nil || n != 0 {
				t.Errorf("Count in a foreign scope: %d %v", n, err)
			}
			for _, bad := range []struct {
				model string
				where map[string]any
			}{{"Nope", nil}, {"Board", map[string]any{"color": "red"}}, {"Board", map[string]any{"name": 7}}} {
				if _, err := r.Find(ctx, []string{"u1"}, bad.model, bad.where, 10); err == nil {
					t.Errorf("Find(%s, %v): no error", bad.model, bad.where)
				}
			}
		})
	}
}
