package httpapi_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	_ "modernc.org/sqlite"             // driver "sqlite"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// changelogIDs maps each result's event id to its changelog id, failing
// on an event that did not apply.
func changelogIDs(t *testing.T, res []push.Result) map[string]string {
	t.Helper()
	ok(t, res)
	out := map[string]string{}
	for _, r := range res {
		out[r.ID] = *r.AppliedChangelogID
	}
	return out
}

// TestIdempotencyPerSubject: an event id names one subject's event. u and
// v push events with the same ids: both are applied, each under its own
// changelog entry; a replay answers each subject its own changelog ids and
// writes nothing; no answer to v carries one of u's changelog ids.
func TestIdempotencyPerSubject(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		first := map[string]map[string]string{}
		for _, sub := range []string{"u", "v"} {
			first[sub] = changelogIDs(t, e.push(t, "acme", sub,
				ev("same-user", "User", "create", user(sub)),
				ev("same-board", "Board", "create", board("b-"+sub, sub, "Board of "+sub))))
		}
		for _, id := range []string{"same-user", "same-board"} {
			if first["u"][id] == first["v"][id] {
				t.Fatalf("%s: u and v were answered the same changelog id %s", id, first["u"][id])
			}
		}
		pulled := map[string]int{}
		for _, sub := range []string{"u", "v"} {
			logs := e.pullAll(t, "acme", sub)
			pulled[sub] = len(logs)
			if len(logs) != 2 {
				t.Fatalf("%s pulls %d entries, want its user and board", sub, len(logs))
			}
			for _, l := range logs {
				if l.ScopeKey != sub || l.ChangelogID != first[sub][l.OutboxEventID] {
					t.Errorf("%s pulls entry %s of scope %s for event %s, want its own %s", sub, l.ChangelogID, l.ScopeKey, l.OutboxEventID, first[sub][l.OutboxEventID])
				}
			}
		}

		// Replays, v first: each subject gets its own ids back. v's replay
		// carries another name for its board, which must not be written.
		for _, sub := range []string{"v", "u"} {
			again := changelogIDs(t, e.push(t, "acme", sub,
				ev("same-board", "Board", "update", board("b-"+sub, sub, "renamed by a replay")),
				ev("same-user", "User", "create", user(sub))))
			for id, cl := range again {
				if cl != first[sub][id] {
					t.Errorf("%s replays %s: changelog id %s, want its own %s (u's %s, v's %s)", sub, id, cl, first[sub][id], first["u"][id], first["v"][id])
				}
			}
		}
		for _, sub := range []string{"u", "v"} {
			logs := e.pullAll(t, "acme", sub)
			if len(logs) != pulled[sub] {
				t.Errorf("%s pulls %d entries after the replays, want %d: a replay wrote", sub, len(logs), pulled[sub])
			}
			for _, l := range logs {
				if l.Model == "Board" && recordOf(t, l)["name"] != "Board of "+sub {
					t.Errorf("%s's board is %v after a replay", sub, recordOf(t, l))
				}
			}
		}

		// A third subject's first use of the id is a new event too.
		w := changelogIDs(t, e.push(t, "acme", "w", ev("same-user", "User", "create", user("w"))))
		if w["same-user"] == first["u"]["same-user"] || w["same-user"] == first["v"]["same-user"] {
			t.Errorf("w's same-user answered another subject's changelog id %s", w["same-user"])
		}
	})
}

// TestIdempotencyMigration: a tenant whose storage has the layout from
// before the ledger (outbox event ids unique in the changelog, no
// _applied_events, no system version) is migrated when a server loads it:
// its applied events are carried into the ledger under the subject that
// owns their scope, so u's replays still answer their original changelog
// ids, and v can then use the same ids for events of its own.
func TestIdempotencyMigration(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		old := changelogIDs(t, e.push(t, "acme", "u",
			ev("old-user", "User", "create", user("u")),
			ev("old-board", "Board", "create", board("b-u", "u", "Old"))))
		downgradeToOldLayout(t, e, "acme")

		// A new server process loads (and so migrates) the tenant.
		url := e.start(t)
		again := changelogIDs(t, pushTo(t, url, "acme", "u",
			ev("old-board", "Board", "update", board("b-u", "u", "renamed by a replay")),
			ev("old-user", "User", "create", user("u"))))
		for id, cl := range again {
			if cl != old[id] {
				t.Errorf("u replays %s after the migration: changelog id %s, want the original %s", id, cl, old[id])
			}
		}
		v := changelogIDs(t, pushTo(t, url, "acme", "v",
			ev("old-user", "User", "create", user("v")),
			ev("old-board", "Board", "create", board("b-v", "v", "V's"))))
		for id, cl := range v {
			if cl == old[id] {
				t.Errorf("v's %s was answered u's changelog id %s", id, cl)
			}
		}
		vAgain := changelogIDs(t, pushTo(t, url, "acme", "v", ev("old-board", "Board", "create", board("b-v", "v", "V's"))))
		if vAgain["old-board"] != v["old-board"] {
			t.Errorf("v's replay: %s, want %s", vAgain["old-board"], v["old-board"])
		}
		if logs := pullAllWith(t, url, "acme", token(t, "acme", "v")); len(logs) != 2 {
			t.Errorf("v pulls %d entries, want its user and board", len(logs))
		}
		logs := pullAllWith(t, url, "acme", token(t, "acme", "u"))
		if len(logs) != 2 {
			t.Fatalf("u pulls %d entries after the migration, want 2", len(logs))
		}
		for _, l := range logs {
			if l.Model == "Board" && recordOf(t, l)["name"] != "Old" {
				t.Errorf("u's board after a replay = %v", recordOf(t, l))
			}
		}
	})
}

// downgradeToOldLayout puts a tenant's own tables back as servers before
// the ledger made them: outbox_event_id UNIQUE in _changelog, no
// _applied_events table, no system version in _meta.
func downgradeToOldLayout(t *testing.T, e *env, tenantID string) {
	t.Helper()
	ctx := context.Background()
	var stmts []string
	var conn *sql.DB
	var err error
	if e.db.Name == "postgres" {
		conn, err = sql.Open("pgx", e.dbURL)
		s := `"t_` + tenantID + `".`
		stmts = []string{
			"DROP TABLE " + s + `"_applied_events"`,
			"DELETE FROM " + s + `"_meta" WHERE key = 'system'`,
			"ALTER TABLE " + s + `"_changelog" ADD CONSTRAINT "_changelog_outbox_event_id_key" UNIQUE (outbox_event_id)`,
		}
	} else {
		conn, err = sql.Open("sqlite", "file:"+filepath.Join(e.data, "tenants", tenantID+".db")+"?_pragma=busy_timeout(10000)")
		stmts = []string{
			`DROP TABLE "_applied_events"`,
			`DELETE FROM "_meta" WHERE key = 'system'`,
			`CREATE TABLE "_changelog_old" (id TEXT PRIMARY KEY, model TEXT NOT NULL, key_path TEXT NOT NULL, operation TEXT NOT NULL, ` +
				`scope_key TEXT NOT NULL, outbox_event_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)`,
			`INSERT INTO "_changelog_old" SELECT id, model, key_path, operation, scope_key, outbox_event_id, created_at FROM "_changelog"`,
			`DROP TABLE "_changelog"`,
			`ALTER TABLE "_changelog_old" RENAME TO "_changelog"`,
			`CREATE INDEX "_changelog_scope_id" ON "_changelog" (scope_key, id)`,
			`CREATE INDEX "_changelog_record" ON "_changelog" (model, key_path, id)`,
		}
	}
	must(t, err)
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	must(t, err)
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			_ = tx.Rollback()
			t.Fatalf("%s: %v", s, err)
		}
	}
	must(t, tx.Commit())
}

// TestCompactionUpgrade: a tenant at system version 2 (before compaction:
// no (scope_key, model, key_path) index, no index on the ledger's
// applied_at) gets both indexes when a server loads it (and the tombstone
// index of version 4), is compacted from its records' next writes on, and
// has its history marked for the online compaction (store's
// TestCompactionAfterUpgrade runs it).
func TestCompactionUpgrade(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		ok(t, e.push(t, "acme", "cu", ev("", "User", "create", user("cu")), ev("", "Board", "create", board("cu-b", "cu", "v1"))))
		ctx := context.Background()
		driver, dsn, s := "sqlite", "file:"+filepath.Join(e.data, "tenants", "acme.db")+"?_pragma=busy_timeout(10000)", ""
		if e.db.Name == "postgres" {
			driver, dsn, s = "pgx", e.dbURL, `"t_acme".`
		}
		conn, err := sql.Open(driver, dsn)
		must(t, err)
		defer conn.Close()
		for _, q := range []string{
			"DROP INDEX " + s + `"_changelog_scope_record"`,
			"DROP INDEX " + s + `"_applied_events_at"`,
			"UPDATE " + s + `"_meta" SET value = '2' WHERE key = 'system'`,
		} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		url := e.start(t) // loads (and so upgrades) the tenant
		ok(t, pushTo(t, url, "acme", "cu", ev("", "Board", "update", board("cu-b", "cu", "v2"))))
		logs := pullAllWith(t, url, "acme", token(t, "acme", "cu"))
		if len(logs) != 2 || logs[1].Operation != "update" || recordOf(t, logs[1])["name"] != "v2" {
			t.Errorf("after the upgrade and an update: %+v, want the user's entry and the board's update", logs)
		}
		var version string
		must(t, conn.QueryRowContext(ctx, "SELECT value FROM "+s+`"_meta" WHERE key = 'system'`).Scan(&version))
		if version != "4" {
			t.Errorf("system version %q after the upgrade, want 4", version)
		}
		var pending string
		must(t, conn.QueryRowContext(ctx, "SELECT value FROM "+s+`"_meta" WHERE key = 'compaction'`).Scan(&pending))
		if pending != "pending" {
			t.Errorf("compaction mark %q after the upgrade, want pending", pending)
		}
		for _, idx := range []string{"_changelog_scope_record", "_applied_events_at", "_changelog_tombstones"} {
			q := "SELECT count(*) FROM pg_indexes WHERE schemaname = 't_acme' AND indexname = $1"
			if e.db.Name != "postgres" {
				q = "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?"
			}
			var n int
			must(t, conn.QueryRowContext(ctx, q, idx).Scan(&n))
			if n != 1 {
				t.Errorf("index %s: %d after the upgrade, want 1", idx, n)
			}
		}
	})
}
