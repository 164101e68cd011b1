package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// The "teams" tenant: records belong to a Team; who may do what in a team
// is the policy's (and the token's) business.
const teamsSchema = `
model Team {
  id       String       @id
  name     String
  projects Project[]
  audit    AuditEntry[]
}
model Project {
  id     String @id
  name   String
  team   Team   @relation(fields: [teamId], references: [id], onDelete: Cascade)
  teamId String
  tasks  Task[]
}
model Task {
  id        String  @id
  title     String
  project   Project @relation(fields: [projectId], references: [id], onDelete: Cascade)
  projectId String
}
model AuditEntry {
  id     String @id
  note   String
  team   Team   @relation(fields: [teamId], references: [id], onDelete: Cascade)
  teamId String
}
`

const teamsPolicy = `# roles per team
g, alice, editor, team-42
g, alice, editor, team-7
g, bob, viewer, team-42
g, carol, owner, team-42
g, carol, owner, team-7
g, gina, viewer, team-7
p, owner, *, *, *, allow
p, editor, *, Project, create, allow
p, editor, *, Project, update, allow
p, editor, *, Task, create, allow
p, editor, *, Task, update, allow
p, editor, *, AuditEntry, create, allow
p, editor, *, *, pull, allow
p, viewer, *, *, pull, allow
# tina may read tasks of team-42, nothing else there
g, tina, taskreader, team-42
p, taskreader, team-42, Task, pull, allow
# fan may read every fan-* team, fanwriter owns them (many scopes)
g, fan, viewer, fan-*
g, fanwriter, owner, fan-*
# nobody deletes audit entries, owners included
p, *, *, AuditEntry, delete, deny
`

const teamsSecret = "teams-secret-0123456789abcdef0123456789"

type teamsEnv struct {
	url   string
	start func(t testing.TB) string // another server on the same database
}

func newTeamsEnv(t testing.TB, db storetest.DB) *teamsEnv {
	t.Helper()
	root, data := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "teams")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "schema.prisma"), []byte(teamsSchema), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "policy.csv"), []byte(teamsPolicy), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, tenant.ManifestFile), []byte("id: teams\nschema: schema.prisma\nrootModel: Team\npolicy: policy.csv\n"+
		"auth:\n  hs256SecretEnv: TEAMS_SECRET\n  rolesClaim: roles\n"), 0o644))
	url := db.URL(t)
	start := func(t testing.TB) string {
		st := db.OpenAt(t, url, data)
		reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog(),
			Getenv: func(string) string { return teamsSecret }})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		srv := httptest.NewServer(httpapi.New(reg, quietLog()))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	return &teamsEnv{url: start(t), start: start}
}

// teamsToken signs a token for sub, with per-team roles when given.
func teamsToken(t testing.TB, sub string, roles map[string]string) string {
	t.Helper()
	claims := auth.SignClaims{Subject: sub, TTL: time.Hour}
	if roles != nil {
		claims.Extra = map[string]any{"roles": roles}
	}
	tok, err := auth.SignHS256([]byte(teamsSecret), claims)
	must(t, err)
	return tok
}

func (e *teamsEnv) push(t testing.TB, tok string, events ...map[string]any) []push.Result {
	t.Helper()
	code, body, _ := post(t, e.url+"/v1/tenants/teams/push", tok, map[string]any{"events": events})
	if code != http.StatusOK {
		t.Fatalf("push: %d %s", code, body)
	}
	var res []push.Result
	must(t, jsonUnmarshal(body, &res))
	return res
}

// pullAll follows the cursor from start until an empty page and returns
// the entries and the final cursor.
func pullAllFrom(t testing.TB, url, tok string, req map[string]any) ([]pull.LogWithRecord, *string) {
	t.Helper()
	var all []pull.LogWithRecord
	var cursor *string
	if c, ok := req["lastChangelogId"].(string); ok {
		cursor = &c
	}
	for {
		code, body, _ := post(t, url+"/v1/tenants/teams/pull", tok, req)
		if code != http.StatusOK {
			t.Fatalf("pull: %d %s", code, body)
		}
		var page pull.Response
		must(t, jsonUnmarshal(body, &page))
		if len(page.LogsWithRecords) == 0 {
			return all, cursor
		}
		all = append(all, page.LogsWithRecords...)
		cursor = page.Cursor
		next := map[string]any{"lastChangelogId": *page.Cursor}
		for k, v := range req {
			if k != "lastChangelogId" {
				next[k] = v
			}
		}
		req = next
	}
}

func team(id string) map[string]any { return map[string]any{"id": id, "name": "Team " + id} }
func project(id, teamID string) map[string]any {
	return map[string]any{"id": id, "name": "Project " + id, "teamId": teamID}
}
func task(id, projectID string) map[string]any {
	return map[string]any{"id": id, "title": "Task " + id, "projectId": projectID}
}

// replica applies pulled entries the way prisma-idb's client does: upsert
// the record of a create or update (when it is not null), delete on delete.
func replica(logs []pull.LogWithRecord) map[string]bool {
	have := map[string]bool{}
	for _, l := range logs {
		key := l.Model + string(l.KeyPath)
		switch {
		case l.Operation == "delete":
			delete(have, key)
		case string(l.Record) != "null":
			have[key] = true
		}
	}
	return have
}

func TestSharedScopes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		carol, alice, bob, erin := teamsToken(t, "carol", nil), teamsToken(t, "alice", nil), teamsToken(t, "bob", nil), teamsToken(t, "erin", nil)
		ok(t, e.push(t, carol, ev("", "Team", "create", team("team-42")), ev("", "Project", "create", project("p1", "team-42")),
			ev("", "AuditEntry", "create", map[string]any{"id": "a1", "note": "founded", "teamId": "team-42"})))

		tests := map[string]struct {
			token string
			event map[string]any
			want  string // error type, "" for applied
		}{
			"sub=alice/role=editor/act=create":          {alice, ev("", "Task", "create", task("t1", "p1")), ""},
			"sub=alice/role=editor/act=delete":          {alice, ev("", "Project", "delete", project("p1", "team-42")), push.ScopeViolation},
			"sub=alice/role=editor/model=Team":          {alice, ev("", "Team", "update", team("team-42")), push.ScopeViolation},
			"sub=bob/role=viewer/act=create":            {bob, ev("", "Task", "create", task("t2", "p1")), push.ScopeViolation},
			"sub=erin/role=none/act=create":             {erin, ev("", "Task", "create", task("t3", "p1")), push.ScopeViolation},
			"sub=carol/role=owner/AuditEntry-delete":    {carol, ev("", "AuditEntry", "delete", map[string]any{"id": "a1", "note": "founded", "teamId": "team-42"}), push.ScopeViolation},
			"sub=dave/token-role=editor/act=create":     {teamsToken(t, "dave", map[string]string{"team-42": "editor"}), ev("", "Task", "create", task("t4", "p1")), ""},
			"sub=dave/token-role=other-team/act=create": {teamsToken(t, "dave", map[string]string{"team-99": "owner"}), ev("", "Task", "create", task("t5", "p1")), push.ScopeViolation},
			"sub=bob/token-role=cannot-beat-deny":       {teamsToken(t, "bob", map[string]string{"team-42": "owner"}), ev("", "AuditEntry", "delete", map[string]any{"id": "a1", "note": "founded", "teamId": "team-42"}), push.ScopeViolation},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				res := e.push(t, tc.token, tc.event)
				if errType(res[0]) != tc.want {
					t.Fatalf("result %+v, want %q", res[0].Error, tc.want)
				}
				if tc.want != "" && res[0].Error.Retryable {
					t.Errorf("a policy denial is retryable")
				}
			})
		}
		t.Run("check=viewer-pulls", func(t *testing.T) {
			logs, _ := pullAllFrom(t, e.url, bob, map[string]any{})
			if len(logs) < 3 {
				t.Fatalf("bob (viewer) pulled %d entries", len(logs))
			}
			for _, l := range logs {
				if l.ScopeKey != "team-42" {
					t.Errorf("bob sees scope %q", l.ScopeKey)
				}
			}
			if code, body, _ := post(t, e.url+"/v1/tenants/teams/pull", bob, map[string]any{"scopeKey": "team-42"}); code != 200 {
				t.Errorf("bob pulls team-42 explicitly: %d %s", code, body)
			}
		})
		t.Run("check=outsider", func(t *testing.T) {
			if code, _, _ := post(t, e.url+"/v1/tenants/teams/pull", erin, map[string]any{"scopeKey": "team-42"}); code != http.StatusForbidden {
				t.Errorf("erin pulls team-42 explicitly: %d, want 403", code)
			}
			if logs, _ := pullAllFrom(t, e.url, erin, map[string]any{}); len(logs) != 0 {
				t.Errorf("erin's union pull shows %d entries of others' scopes", len(logs))
			}
		})
	})
}

// TestUnionPullGainsScope: a scope granted later (here by the token) is
// read from its beginning through the same cursor, without repeats.
func TestUnionPullGainsScope(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		carol := teamsToken(t, "carol", nil)
		ok(t, e.push(t, carol, ev("", "Team", "create", team("team-42")), ev("", "Project", "create", project("g1", "team-42"))))
		ok(t, e.push(t, carol, ev("", "Team", "create", team("team-7")), ev("", "Project", "create", project("g2", "team-7"))))
		gina := teamsToken(t, "gina", nil) // viewer in team-7 by the policy
		first, cursor := pullAllFrom(t, e.url, gina, map[string]any{"limit": 1})
		if len(first) != 2 || first[0].ScopeKey != "team-7" {
			t.Fatalf("gina's first pull: %+v", first)
		}
		ok(t, e.push(t, carol, ev("", "Project", "create", project("g3", "team-7"))))
		// Now gina's token also makes her a viewer of team-42.
		more, _ := pullAllFrom(t, e.url, teamsToken(t, "gina", map[string]string{"team-42": "viewer"}), map[string]any{"lastChangelogId": *cursor, "limit": 2})
		seen := map[string]int{}
		for _, l := range append(first, more...) {
			seen[l.ID]++
		}
		var scopes []string
		for _, l := range more {
			scopes = append(scopes, l.ScopeKey)
		}
		if len(more) != 3 || strings.Count(strings.Join(scopes, ","), "team-42") != 2 {
			t.Errorf("after gaining team-42: %v (want team-42's two entries from its start and team-7's new one)", scopes)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("entry %s seen %d times", id, n)
			}
		}
	})
}

// TestMoveBetweenScopes: moving a project (and its tasks) from team-42 to
// team-7 leaves team-42's readers without it and gives it to team-7's.
func TestMoveBetweenScopes(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		carol, alice := teamsToken(t, "carol", nil), teamsToken(t, "alice", nil)
		ok(t, e.push(t, carol, ev("", "Team", "create", team("team-42")), ev("", "Team", "create", team("team-7")),
			ev("", "Project", "create", project("mv", "team-42")), ev("", "Task", "create", task("mv-t1", "mv")),
			ev("", "Task", "create", task("mv-t2", "mv")), ev("", "Project", "create", project("stay", "team-42"))))
		bob, gina := teamsToken(t, "bob", nil), teamsToken(t, "gina", nil) // viewers of team-42 and team-7
		bobLogs, bobCursor := pullAllFrom(t, e.url, bob, map[string]any{})
		if have := replica(bobLogs); !have[`Project["mv"]`] || !have[`Task["mv-t1"]`] {
			t.Fatalf("bob's replica before the move: %v", have)
		}

		// bob is only a viewer: he may not move it. alice edits both teams.
		if res := e.push(t, teamsToken(t, "dave", map[string]string{"team-42": "editor"}), ev("", "Project", "update", project("mv", "team-7"))); errType(res[0]) != push.ScopeViolation {
			t.Fatalf("a move by an editor of only the old scope: %+v", res[0].Error)
		}
		res := e.push(t, alice, ev("move-1", "Project", "update", project("mv", "team-7")))
		ok(t, res)

		more, _ := pullAllFrom(t, e.url, bob, map[string]any{"lastChangelogId": *bobCursor})
		have := replica(append(bobLogs, more...))
		for _, k := range []string{`Project["mv"]`, `Task["mv-t1"]`, `Task["mv-t2"]`} {
			if have[k] {
				t.Errorf("team-42's reader keeps %s after the move", k)
			}
		}
		if !have[`Project["stay"]`] {
			t.Error("team-42's reader lost a project that did not move")
		}
		// The old scope keeps the move's delete entries, which replaced
		// the records' earlier entries there: a new reader of team-42 reads
		// each record once, the moved ones as tombstones.
		fresh, _ := pullAllFrom(t, e.url, bob, map[string]any{})
		ops := map[string]string{}
		for _, l := range fresh {
			k := l.Model + string(l.KeyPath)
			if _, dup := ops[k]; dup {
				t.Errorf("a new reader of team-42 reads %s twice", k)
			}
			ops[k] = l.Operation
		}
		for _, k := range []string{`Project["mv"]`, `Task["mv-t1"]`, `Task["mv-t2"]`} {
			if ops[k] != "delete" {
				t.Errorf("team-42's changelog has %q for moved %s, want its delete entry", ops[k], k)
			}
		}
		if ops[`Project["stay"]`] != "create" {
			t.Errorf("team-42's changelog has %q for the project that stayed, want its create", ops[`Project["stay"]`])
		}
		ginaLogs, _ := pullAllFrom(t, e.url, gina, map[string]any{})
		have = replica(ginaLogs)
		for _, k := range []string{`Project["mv"]`, `Task["mv-t1"]`, `Task["mv-t2"]`} {
			if !have[k] {
				t.Errorf("team-7's reader lacks %s after the move", k)
			}
		}
		// Replaying the move changes nothing and answers the same id.
		again := e.push(t, alice, ev("move-1", "Project", "update", project("mv", "team-7")))
		if *again[0].AppliedChangelogID != *res[0].AppliedChangelogID {
			t.Errorf("replay of the move: %s, want %s", *again[0].AppliedChangelogID, *res[0].AppliedChangelogID)
		}
		// alice (editor of both) reads both scopes: the move's entries come
		// in an order that leaves her with the project.
		aliceLogs, _ := pullAllFrom(t, e.url, alice, map[string]any{})
		if have := replica(aliceLogs); !have[`Project["mv"]`] || !have[`Task["mv-t2"]`] {
			t.Errorf("a reader of both scopes lost the moved records: %v", have)
		}
	})
}

// TestUnionPullConcurrentWriters: writers in two scopes commit concurrently
// through two server instances while one reader follows the union of both
// with one cursor: every acknowledged entry is seen exactly once.
func TestUnionPullConcurrentWriters(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		servers := []string{e.url, e.start(t)}
		carol := teamsToken(t, "carol", nil)
		ok(t, e.push(t, carol, ev("", "Team", "create", team("team-42")), ev("", "Team", "create", team("team-7")),
			ev("", "Project", "create", project("u42", "team-42")), ev("", "Project", "create", project("u7", "team-7"))))
		unionStress(t, servers, carol, carol, []string{"u42", "u7"}, 0)
	})
}

// TestUnionPullManyScopesConcurrentWriters: the same with a reader of 600
// scopes, whose cursor holds its positions in the database (c2): writers
// spread their tasks over the scopes while the reader follows.
func TestUnionPullManyScopesConcurrentWriters(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		servers := []string{e.url, e.start(t)}
		teams := manyTeams(t, e, 600)
		parents := make([]string, len(teams))
		for i, tm := range teams {
			parents[i] = "fp-" + tm
		}
		unionStress(t, servers, teamsToken(t, "fanwriter", nil), teamsToken(t, "fan", nil), parents, 2*len(teams))
	})
}

// unionStress runs 6 writers, each pushing 15 batches of 5 tasks under the
// given projects (spread over them) through alternating servers, while the
// reader follows its union pull with one cursor; every acknowledged entry
// must be seen exactly once, and before must be the number of entries the
// reader sees that were there before the writers started.
func unionStress(t *testing.T, servers []string, writer, reader string, parents []string, before int) {
	t.Helper()
	const writers, batches, perPush = 6, 15, 5
	write := func(w, b int) []string {
		events := make([]map[string]any, perPush)
		for i := range events {
			parent := parents[(w+len(parents)/writers*w+b*7+i*13)%len(parents)]
			events[i] = ev("", "Task", "create", task(fmt.Sprintf("cw-%d-%d-%d", w, b, i), parent))
		}
		code, body, _ := post(t, servers[(w+b)%2]+"/v1/tenants/teams/push", writer, map[string]any{"events": events})
		if code != 200 {
			t.Errorf("push: %d %s", code, body)
			return nil
		}
		var res []push.Result
		must(t, jsonUnmarshal(body, &res))
		var ids []string
		for _, r := range res {
			if r.Error != nil {
				t.Errorf("event %s: %+v", r.ID, r.Error)
				continue
			}
			ids = append(ids, *r.AppliedChangelogID)
		}
		return ids
	}
	req := map[string]any{"limit": 9}
	maxCursor := 0
	read := func(i int) []string {
		code, body, _ := post(t, servers[i%2]+"/v1/tenants/teams/pull", reader, req)
		if code != 200 {
			t.Fatalf("pull: %d %s", code, body)
		}
		var page pull.Response
		must(t, jsonUnmarshal(body, &page))
		if page.Cursor != nil {
			req = map[string]any{"limit": 9, "lastChangelogId": *page.Cursor}
			maxCursor = max(maxCursor, len(*page.Cursor))
		}
		return pageIDs(page)
	}
	acked, order := followWhileWriting(t, writers, batches, write, read)
	seen := map[string]int{}
	for _, id := range order {
		seen[id]++
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged id %s seen %d times", id, seen[id])
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("id %s seen %d times", id, c)
		}
	}
	n := len(acked)
	if n != writers*batches*perPush {
		t.Errorf("%d acknowledged, want %d", n, writers*batches*perPush)
	}
	if before > 0 && len(seen) != before+n {
		t.Errorf("the reader saw %d entries, want %d before and %d new", len(seen), before, n)
	}
	if maxCursor > 4096 {
		t.Errorf("the cursor grew to %d bytes", maxCursor)
	}
}

// TestPullPassesOverHiddenModels: entries of models the subject may not pull
// are skipped without ever handing the client an empty page before the end.
func TestPullPassesOverHiddenModels(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newTeamsEnv(t, db)
		carol := teamsToken(t, "carol", nil)
		events := []map[string]any{ev("", "Team", "create", team("team-42"))}
		for i := 0; i < 40; i++ {
			events = append(events, ev("", "Project", "create", project(fmt.Sprintf("hp-%d", i), "team-42")))
		}
		events = append(events, ev("", "Task", "create", task("ht-1", "hp-39")))
		ok(t, e.push(t, carol, events...))
		tina := teamsToken(t, "tina", nil)
		for _, req := range []map[string]any{{"limit": 5}, {"limit": 5, "scopeKey": "team-42"}} {
			code, body, _ := post(t, e.url+"/v1/tenants/teams/pull", tina, req)
			if code != 200 {
				t.Fatalf("pull %v: %d %s", req, code, body)
			}
			var page pull.Response
			must(t, jsonUnmarshal(body, &page))
			if len(page.LogsWithRecords) != 1 || page.LogsWithRecords[0].Model != "Task" || string(page.LogsWithRecords[0].Record) == "null" {
				t.Fatalf("pull %v: %+v, want just the task", req, page.LogsWithRecords)
			}
			next := map[string]any{"limit": 5, "lastChangelogId": *page.Cursor}
			if sk, ok := req["scopeKey"]; ok {
				next["scopeKey"] = sk
			}
			if logs, _ := pullAllFrom(t, e.url, tina, next); len(logs) != 0 {
				t.Errorf("after the task: %d more entries", len(logs))
			}
		}
	})
}
