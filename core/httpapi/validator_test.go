package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

var (
	pluginOnce sync.Once
	pluginPath string
	pluginErr  error
)

// kanbanRules builds plugins/kanban-rules once per test binary.
func kanbanRules(t testing.TB) string {
	t.Helper()
	pluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kanban-rules-")
		if err != nil {
			pluginErr = err
			return
		}
		pluginPath = filepath.Join(dir, "kanban-rules")
		cmd := exec.Command("go", "build", "-o", pluginPath, "../../plugins/kanban-rules")
		// cgo threads take 8 MB stacks each, which the plugin's address-space
		// limit does not afford; see plugins/kanban-rules/README.md.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			pluginErr = err
			pluginPath = string(out)
		}
	})
	if pluginErr != nil {
		t.Fatalf("build kanban-rules: %v\n%s", pluginErr, pluginPath)
	}
	return pluginPath
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// validatorEnv serves the tenant "ruled" (kanban schema + the kanban-rules
// plugin) and "free" (no validator) from one server.
func validatorEnv(t testing.TB, db storetest.DB, sum string) string {
	t.Helper()
	root := t.TempDir()
	bin := kanbanRules(t)
	if sum == "" {
		sum = sha256File(t, bin)
	}
	writeTenant(t, root, "acme", "validator:\n  command: "+bin+"\n  sha256: "+sum+"\n  timeout: 5s\n")
	writeTenant(t, root, "beta", "")
	st := db.Open(t)
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: testLog(t)})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Cleanup(func() { _ = reg.Close() })
	srv := httptest.NewServer(httpapi.New(reg, quietLog()))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestValidatorPlugin(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		url := validatorEnv(t, db, "")
		ok(t, pushTo(t, url, "acme", "vu1", ev("", "User", "create", user("vu1")), ev("", "Board", "create", board("vb1", "vu1", "Q4"))))
		ok(t, pushTo(t, url, "acme", "vu2", ev("", "User", "create", user("vu2"))))

		res := pushTo(t, url, "acme", "vu1",
			ev("", "Board", "create", board("vb2", "vu1", "   ")),                    // empty name
			ev("", "Board", "create", board("vb3", "vu1", "Q4")),                     // taken by vb1 (host read)
			ev("", "Board", "create", board("vb4", "vu1", "Q1")),                     // fine
			ev("", "Todo", "create", todo("vt1", "vb4", strings.Repeat("x", 201))),   // too long
			ev("", "Todo", "create", todo("vt2", "vb4", "fine")),                     // fine
			ev("", "Todo", "create", todo("vt3", "vb3", "under the rejected board")), // its board was rejected
		)
		want := []string{push.CustomValidationFailed, push.CustomValidationFailed, "", push.CustomValidationFailed, "", push.MissingParent}
		for i, w := range want {
			if got := errType(res[i]); got != w {
				t.Errorf("event %d: %q (%+v), want %q", i, got, res[i].Error, w)
			}
		}
		if res[0].Error.Retryable || !strings.Contains(res[1].Error.Message, `"Q4" exists already`) {
			t.Errorf("rejections: %+v %+v", res[0].Error, res[1].Error)
		}
		// The same name in another user's scope: the plugin's read never
		// sees vu1's board.
		ok(t, pushTo(t, url, "acme", "vu2", ev("", "Board", "create", board("vb5", "vu2", "Q4"))))
		// Nothing of the rejected events was written.
		for _, l := range pullAllFromTenant(t, url, "acme", "vu1") {
			if strings.Contains(string(l.KeyPath), "vb2") || strings.Contains(string(l.KeyPath), "vb3") || strings.Contains(string(l.KeyPath), "vt1") {
				t.Errorf("a rejected event was written: %+v", l)
			}
		}
		// A tenant without a validator is unaffected.
		ok(t, pushTo(t, url, "beta", "vu1", ev("", "User", "create", user("vu1")), ev("", "Board", "create", board("vb1", "vu1", "   "))))
	})
}

// TestValidatorChecksumMismatch: a plugin whose file does not match the
// manifest's sha256 never runs; the tenant's events fail closed, retryably,
// and other tenants keep being served.
func TestValidatorChecksumMismatch(t *testing.T) {
	t.Parallel()
	db := storetest.Databases(t)[0]
	url := validatorEnv(t, db, strings.Repeat("0", 64))
	res := pushTo(t, url, "acme", "cs1", ev("", "User", "create", user("cs1")))
	if errType(res[0]) != push.ValidatorUnavailable || !res[0].Error.Retryable {
		t.Fatalf("push with a mismatching plugin: %+v", res[0].Error)
	}
	if logs := pullAllFromTenant(t, url, "acme", "cs1"); len(logs) != 0 {
		t.Errorf("something was written: %+v", logs)
	}
	ok(t, pushTo(t, url, "beta", "cs1", ev("", "User", "create", user("cs1"))))
}

func pullAllFromTenant(t testing.TB, url, tenantID, sub string) []pullEntry {
	t.Helper()
	var all []pullEntry
	req := map[string]any{}
	for {
		page := pullFrom(t, url, tenantID, sub, req)
		if len(page.LogsWithRecords) == 0 {
			return all
		}
		for _, l := range page.LogsWithRecords {
			all = append(all, pullEntry{KeyPath: l.KeyPath, Model: l.Model})
		}
		req = map[string]any{"lastChangelogId": *page.Cursor}
	}
}

type pullEntry struct {
	Model   string
	KeyPath []byte
}

// testLog writes to the test's log when SYNCPLANE_TEST_LOG is set.
func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("SYNCPLANE_TEST_LOG") == "" {
		return quietLog()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
