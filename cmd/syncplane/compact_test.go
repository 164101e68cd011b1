package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/storetest"
)

// TestCompact: `syncplane compact --tenant T` compacts a changelog written
// before compaction existed (every change an entry) and drops the
// tombstones past the tenant's tombstoneRetention, and says what it
// removed; a second run removes nothing.
func TestCompact(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		root, data := t.TempDir(), t.TempDir()
		writeTenant(t, root, "acme", "  hs256SecretFile: secret\ntombstoneRetention: 1h\n")
		e := dbEnv(t, db).with("SYNCPLANE_TENANTS_DIR", root)
		if _, _, err := runCmd(t, e, "migrate", "--data", data); err != nil {
			t.Fatal(err)
		}
		// The old history: 10 todos with a create and three updates each,
		// then a delete of todo 0, all written in January.
		var rows []string
		last := ""
		add := func(i int, op string) {
			id, err := changelog.Next(last, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			last = id
			rows = append(rows, fmt.Sprintf(`('%s', 'Todo', '["t%d"]', '%s', 'u1', 'ev-%d', '2026-01-01T00:00:00.000Z')`, id, i, op, len(rows)))
		}
		for _, op := range []string{"create", "update", "update", "update"} {
			for i := range 10 {
				add(i, op)
			}
		}
		add(0, "delete")
		table, conn := `"_changelog"`, filepath.Join(data, "tenants", "acme.db")
		driver := "sqlite"
		if u := e["SYNCPLANE_DATABASE_URL"]; u != "" {
			table, conn, driver = `"t_acme"."_changelog"`, u, "pgx"
		}
		raw, err := sql.Open(driver, conn)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Exec("INSERT INTO " + table + " (id, model, key_path, operation, scope_key, outbox_event_id, created_at) VALUES " +
			strings.Join(rows, ", ")); err != nil {
			t.Fatal(err)
		}

		out, _, err := runCmd(t, e, "compact", "--tenant", "acme", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`^tenant acme: 41 entries before; removed 31 superseded entries and 1 tombstones \(tombstoneRetention 1h0m0s\); ` +
			`9 entries after, 0 of them tombstones; 1 batches in \S+\n$`)
		if !want.MatchString(out) {
			t.Errorf("first run: %q, want %s", out, want)
		}
		if out, _, err = runCmd(t, e, "compact", "--tenant", "acme", "--data", data); err != nil || !strings.Contains(out, "removed 0 superseded entries and 0 tombstones") {
			t.Errorf("second run: %q, %v; want nothing removed", out, err)
		}
		if _, _, err := runCmd(t, e, "compact", "--data", data); err == nil || !strings.Contains(err.Error(), "--tenant is required") {
			t.Errorf("without --tenant: %v", err)
		}
		if _, _, err := runCmd(t, e, "compact", "--tenant", "nope", "--data", data); err == nil || !strings.Contains(err.Error(), `tenant "nope" is not loaded`) {
			t.Errorf("an unknown tenant: %v", err)
		}
	})
}
