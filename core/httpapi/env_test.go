package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

// secrets of the test tenants (HS256 needs at least 32 bytes).
var secrets = map[string]string{
	"acme":    "acme-secret-0123456789abcdef0123456789",
	"beta":    "beta-secret-0123456789abcdef0123456789",
	"limited": "limited-secret-0123456789abcdef012345",
	"signin":  "signin-secret-0123456789abcdef0123456",
	"svc":     "svc-secret-0123456789abcdef012345678901",
	"pidb":    "pidb-secret-0123456789abcdef01234567890",
	"audit":   "audit-secret-0123456789abcdef0123456789",
}

// env is a running server over real HTTP with tenants on one database.
type env struct {
	t     testing.TB
	db    storetest.DB
	url   string
	st    *store.Store
	reg   *tenant.Registry
	dir   string // tenants directory
	data  string // SQLite data directory
	dbURL string // PostgreSQL database URL

	// replicas, when set, are read replicas of dbURL for every server
	// start runs (replica_test.go); stores are the servers' stores.
	replicas   []string
	replicaOpt store.ReplicaOptions
	stores     []*store.Store
}

// writeTenant writes a tenant folder with the kanban schema.
func writeTenant(t testing.TB, root, id, extra string) {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, os.CopyFS(filepath.Join(dir, "prisma"), os.DirFS(testkit.KanbanDir(t))))
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte(secrets[id]+"\n"), 0o600))
	manifest := fmt.Sprintf("id: %s\nschema: prisma\nauth:\n  hs256SecretFile: secret\n  issuer: https://%s.example\n  audience: syncplane\n%s", id, id, extra)
	must(t, os.WriteFile(filepath.Join(dir, tenant.ManifestFile), []byte(manifest), 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newEnv(t testing.TB, db storetest.DB) *env {
	t.Helper()
	e := &env{t: t, db: db, dir: t.TempDir(), data: t.TempDir()}
	e.dbURL = db.URL(t)
	writeTenant(t, e.dir, "acme", "limits:\n  pullPageMax: 100\n")
	writeTenant(t, e.dir, "beta", "")
	writeTenant(t, e.dir, "limited", "limits:\n  requestsPerSecond: 0.01\n  burst: 1\n")
	writeTenant(t, e.dir, "signin", "rootFromToken:\n  id: sub\n  email: email\n  name: name\nallowedOrigins: [\"https://app.example\"]\n")
	e.url = e.start(t)
	return e
}

// start runs one more server process on the env's database and returns its URL.
func (e *env) start(t testing.TB) string {
	t.Helper()
	st := e.db.OpenAt(t, e.dbURL, e.data)
	reg, errs := tenant.LoadDir(context.Background(), e.dir, tenant.Options{Store: st, Log: quietLog()})
	for _, err := range errs {
		t.Fatal(err)
	}
	if e.st == nil {
		e.st, e.reg = st, reg
	}
	if e.replicas != nil {
		must(t, st.AddReplicas(context.Background(), e.replicas, e.replicaOpt))
	}
	e.stores = append(e.stores, st)
	srv := httptest.NewServer(httpapi.New(reg, quietLog(), httpapi.WithReady(st.Ready), httpapi.WithDBStats(st.DBStats),
		httpapi.WithCollectors(st.ReplicaCollectors()...)))
	t.Cleanup(srv.Close)
	return srv.URL
}

func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func token(t testing.TB, tenantID, sub string) string {
	t.Helper()
	tok, err := auth.SignHS256([]byte(secrets[tenantID]), auth.SignClaims{Subject: sub, Issuer: "https://" + tenantID + ".example", Audience: "syncplane", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends body (a []byte or a value to encode) with the token.
func post(t testing.TB, url, tok string, body any) (int, []byte, http.Header) {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

var evSeq atomic.Int64

// ev builds an OutboxEvent as the prisma-idb client sends it.
func ev(id, model, op string, payload any) map[string]any {
	if id == "" {
		id = fmt.Sprintf("evt-%d-%d", time.Now().UnixNano(), evSeq.Add(1))
	}
	return testkit.OutboxEvent(id, model, op, payload)
}

const ts = testkit.KanbanTime

func user(id string) map[string]any                { return testkit.User(id) }
func board(id, userID, name string) map[string]any { return testkit.Board(id, userID, name) }
func todo(id, boardID, title string) map[string]any {
	return testkit.Todo(id, boardID, title)
}

// pushOK pushes events and returns the results, failing on a non-200.
func (e *env) push(t testing.TB, tenantID, sub string, events ...map[string]any) []push.Result {
	t.Helper()
	return pushTo(t, e.url, tenantID, sub, events...)
}

func pushTo(t testing.TB, base, tenantID, sub string, events ...map[string]any) []push.Result {
	t.Helper()
	code, body, _ := post(t, base+"/v1/tenants/"+tenantID+"/push", token(t, tenantID, sub), map[string]any{"events": events})
	if code != http.StatusOK {
		t.Fatalf("push: status %d: %s", code, body)
	}
	var res []push.Result
	must(t, json.Unmarshal(body, &res))
	if len(res) != len(events) {
		t.Fatalf("push: %d results for %d events", len(res), len(events))
	}
	return res
}

func (e *env) pull(t testing.TB, tenantID, sub string, req map[string]any) pull.Response {
	t.Helper()
	return pullFrom(t, e.url, tenantID, sub, req)
}

func pullFrom(t testing.TB, base, tenantID, sub string, req map[string]any) pull.Response {
	t.Helper()
	code, body, _ := post(t, base+"/v1/tenants/"+tenantID+"/pull", token(t, tenantID, sub), req)
	if code != http.StatusOK {
		t.Fatalf("pull: status %d: %s", code, body)
	}
	var resp pull.Response
	must(t, json.Unmarshal(body, &resp))
	return resp
}

// pullAll follows the cursor until an empty page, like the client does.
func (e *env) pullAll(t testing.TB, tenantID, sub string) []pull.LogWithRecord {
	t.Helper()
	return pullAllWith(t, e.url, tenantID, token(t, tenantID, sub))
}

// pullAllWith is pullAll with a token of the caller's.
func pullAllWith(t testing.TB, base, tenantID, tok string) []pull.LogWithRecord {
	t.Helper()
	var all []pull.LogWithRecord
	req := map[string]any{}
	for {
		code, body, _ := post(t, base+"/v1/tenants/"+tenantID+"/pull", tok, req)
		if code != http.StatusOK {
			t.Fatalf("pull: status %d: %s", code, body)
		}
		var page pull.Response
		must(t, json.Unmarshal(body, &page))
		if len(page.LogsWithRecords) == 0 {
			return all
		}
		all = append(all, page.LogsWithRecords...)
		req = map[string]any{"lastChangelogId": *page.Cursor}
	}
}

// ok asserts that every result applied.
func ok(t testing.TB, res []push.Result) {
	t.Helper()
	for _, r := range res {
		if r.Error != nil || r.AppliedChangelogID == nil {
			t.Fatalf("event %s not applied: %+v", r.ID, r.Error)
		}
	}
}

// errType is the error type of a result, or "" when it applied.
func errType(r push.Result) string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Type
}

func recordOf(t testing.TB, l pull.LogWithRecord) map[string]any {
	t.Helper()
	var m map[string]any
	must(t, json.Unmarshal(l.Record, &m))
	return m
}

var _ = strings.Contains

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
