package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/admin"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

const adminTok = "admin-token-0123456789abcdef"

// adminCall sends an admin API request with tok ("" for none).
func adminCall(t *testing.T, base, method, path, tok string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes(), resp.Header
}

// TestAdminAPI: the admin API over HTTP on both databases: tokens
// refused and logged, the tenants with their status, a scope's
// statistics and its export as JSON lines, policy explain, reload,
// replicas; every call logged with who and what.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		var logs testkit.LockedBuffer
		h, err := admin.New(admin.Options{Tenants: e.reg, Store: e.st, Token: adminTok,
			Log: slog.New(slog.NewJSONHandler(&logs, nil))})
		must(t, err)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)

		for _, tok := range []string{"", "wrong-token-0123456789"} {
			code, body, hdr := adminCall(t, srv.URL, "GET", "/admin/v1/tenants", tok, nil)
			if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("token %q: status %d (%s), want 401 with WWW-Authenticate", tok, code, body)
			}
		}
		if _, err := admin.New(admin.Options{Tenants: e.reg, Store: e.st, Token: "short"}); err == nil {
			t.Error("a short admin token was accepted")
		}

		code, body, _ := adminCall(t, srv.URL, "GET", "/admin/v1/tenants", adminTok, nil)
		var list struct {
			Tenants []admin.TenantStatus `json:"tenants"`
		}
		must(t, json.Unmarshal(body, &list))
		if code != http.StatusOK || len(list.Tenants) != 4 || list.Tenants[0].ID != "acme" || list.Tenants[0].Status != "loaded" || list.Tenants[0].SchemaDigest == "" ||
			list.Tenants[0].Database == nil || list.Tenants[0].Database.Database != "main" {
			t.Fatalf("tenants: %d %s", code, body)
		}
		// A folder that fails to load is listed as refused, with its error.
		writeTenant(t, e.dir, "svc", "")
		must(t, os.WriteFile(filepath.Join(e.dir, "svc", "tenant.yaml"), []byte("id: svc\nschema: nowhere\nauth:\n  hs256SecretFile: secret\n"), 0o644))
		tenant.Reload(context.Background(), e.reg, e.dir, tenant.Options{Store: e.st, Log: quietLog()})
		_, body, _ = adminCall(t, srv.URL, "GET", "/admin/v1/tenants", adminTok, nil)
		must(t, json.Unmarshal(body, &list))
		if n := len(list.Tenants); n != 5 || list.Tenants[n-1].ID != "svc" || list.Tenants[n-1].Status != "refused" || !strings.Contains(list.Tenants[n-1].Error, "nowhere") {
			t.Errorf("tenants with a refused folder: %s", body)
		}

		ok(t, e.push(t, "acme", "ad", ev("", "User", "create", user("ad")), ev("", "Board", "create", board("ad-b", "ad", "b")),
			ev("", "Todo", "create", todo("ad-t1", "ad-b", "one")), ev("", "Todo", "create", todo("ad-t2", "ad-b", "two"))))
		ok(t, e.push(t, "acme", "ad", ev("", "Todo", "delete", todo("ad-t2", "ad-b", "two"))))

		code, body, _ = adminCall(t, srv.URL, "GET", "/admin/v1/tenants/acme/scopes/ad", adminTok, nil)
		var st struct {
			Live       int    `json:"liveRecords"`
			Tombstones int    `json:"tombstones"`
			Entries    int    `json:"entries"`
			Head       string `json:"head"`
			LastWrite  string `json:"lastWrite"`
		}
		must(t, json.Unmarshal(body, &st))
		if code != http.StatusOK || st.Live != 3 || st.Tombstones != 1 || st.Entries != 4 || st.Head == "" || st.LastWrite == "" {
			t.Errorf("scope stats: %d %s", code, body)
		}

		code, body, hdr := adminCall(t, srv.URL, "GET", "/admin/v1/tenants/acme/scopes/ad/export", adminTok, nil)
		if code != http.StatusOK || hdr.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("export: %d %s %s", code, hdr.Get("Content-Type"), body)
		}
		got := map[string]map[string]any{}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var line struct {
				Model  string          `json:"model"`
				Key    []any           `json:"key"`
				Record map[string]any  `json:"record"`
				Rest   json.RawMessage `json:"-"`
			}
			must(t, json.Unmarshal(sc.Bytes(), &line))
			got[line.Model+":"+line.Key[0].(string)] = line.Record
		}
		if len(got) != 3 || got["Todo:ad-t1"]["title"] != "one" || got["Board:ad-b"] == nil || got["User:ad"] == nil {
			t.Errorf("export: %s", body)
		}
		if code, body, _ := adminCall(t, srv.URL, "GET", "/admin/v1/tenants/nope/scopes/ad/export", adminTok, nil); code != http.StatusNotFound {
			t.Errorf("export of an unknown tenant: %d %s", code, body)
		}

		code, body, _ = adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/policy/explain", adminTok,
			map[string]any{"subject": "ad", "scope": "ad", "model": "Todo", "action": "create"})
		var ex struct {
			Allowed bool     `json:"allowed"`
			Lines   []string `json:"lines"`
		}
		must(t, json.Unmarshal(body, &ex))
		if code != http.StatusOK || !ex.Allowed {
			t.Errorf("explain own scope: %d %s", code, body)
		}
		code, body, _ = adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/policy/explain", adminTok,
			map[string]any{"subject": "ad", "scope": "someone-else", "model": "Todo", "action": "create"})
		must(t, json.Unmarshal(body, &ex))
		if code != http.StatusOK || ex.Allowed {
			t.Errorf("explain another scope: %d %s", code, body)
		}
		if code, body, _ := adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/policy/explain", adminTok, map[string]any{"subject": "ad"}); code != http.StatusBadRequest {
			t.Errorf("explain without scope: %d %s", code, body)
		}
		if code, body, _ := adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/policy/explain", adminTok,
			map[string]any{"subject": "ad", "scope": "ad", "model": "Todo", "action": "write"}); code != http.StatusBadRequest {
			t.Errorf("explain with an unknown action: %d %s", code, body)
		}

		if code, body, _ := adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/reload", adminTok, nil); code != http.StatusNotImplemented {
			t.Errorf("reload without a reload function: %d %s", code, body)
		}
		code, body, _ = adminCall(t, srv.URL, "GET", "/admin/v1/replicas", adminTok, nil)
		if code != http.StatusOK || !strings.Contains(string(body), `"replicas":[]`) {
			t.Errorf("replicas: %d %s", code, body)
		}

		code, body, _ = adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/compact", adminTok, nil)
		var cr admin.CompactReport
		must(t, json.Unmarshal(body, &cr))
		if code != http.StatusOK || cr.After != cr.Before-cr.Superseded-cr.Tombstones || cr.After < 4 {
			t.Errorf("compact: %d %s", code, body)
		}

		// Erase: a device that followed the scope gets the deletes, a new
		// one only tombstones; export and statistics show nothing live.
		follower := e.pull(t, "acme", "ad", map[string]any{"limit": 100})
		if len(follower.LogsWithRecords) != 4 || follower.Cursor == nil {
			t.Fatalf("before the erasure: %+v", follower)
		}
		code, body, _ = adminCall(t, srv.URL, "POST", "/admin/v1/tenants/acme/scopes/ad/erase", adminTok, nil)
		var rep struct {
			Records, Deletes, OtherScopes int
			LedgerRows, HistoryRows       int64
		}
		must(t, json.Unmarshal(body, &rep))
		if code != http.StatusOK || rep.Records != 3 || rep.Deletes != 3 || rep.LedgerRows != 5 {
			t.Fatalf("erase: %d %s", code, body)
		}
		after := e.pull(t, "acme", "ad", map[string]any{"limit": 100, "lastChangelogId": *follower.Cursor})
		deleted := map[string]bool{}
		for _, l := range after.LogsWithRecords {
			if l.Operation != "delete" || string(l.Record) != "null" {
				t.Errorf("after the erasure the follower got %+v", l)
			}
			deleted[l.Model+string(l.KeyPath)] = true
		}
		if len(deleted) != 3 || !deleted[`User["ad"]`] || !deleted[`Board["ad-b"]`] || !deleted[`Todo["ad-t1"]`] {
			t.Errorf("the follower's deletes: %v", deleted)
		}
		for _, l := range e.pullAll(t, "acme", "ad") {
			if l.Operation != "delete" || string(l.Record) != "null" {
				t.Errorf("a new device got %+v after the erasure", l)
			}
		}
		if code, body, _ := adminCall(t, srv.URL, "GET", "/admin/v1/tenants/acme/scopes/ad/export", adminTok, nil); code != http.StatusOK || len(body) != 0 {
			t.Errorf("export after the erasure: %d %q", code, body)
		}
		code, body, _ = adminCall(t, srv.URL, "GET", "/admin/v1/tenants/acme/scopes/ad", adminTok, nil)
		must(t, json.Unmarshal(body, &st))
		if code != http.StatusOK || st.Live != 0 || st.Tombstones != 4 {
			t.Errorf("scope stats after the erasure: %d %s", code, body)
		}

		l := logs.String()
		if !strings.Contains(l, `"msg":"scope erased"`) || strings.Contains(l, "/scopes/ad") {
			t.Errorf("the erasure's audit line is missing or names the scope:\n%s", l)
		}
		if !strings.Contains(l, `"msg":"admin call refused"`) || !strings.Contains(l, `"path":"/admin/v1/tenants/acme/scopes/sha256:`) ||
			!strings.Contains(l, `"who":"token:`) {
			t.Errorf("admin log:\n%s", l)
		}
	})
}
