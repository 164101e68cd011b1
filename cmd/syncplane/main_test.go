package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

// serve starts goroutines (the HTTP server, the SIGHUP watcher); none may
// outlive its run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "acme-secret-0123456789abcdef0123456789" // ≥ 32 bytes

// env is a fake environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// with returns a copy of e with more variables.
func (e env) with(kv ...string) env {
	out := env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// dbEnv is the environment that points the server at a fresh database of db.
func dbEnv(t *testing.T, db storetest.DB) env {
	t.Helper()
	if u := db.URL(t); u != "" {
		return env{"SYNCPLANE_DATABASE_URL": u}
	}
	return env{}
}

// runCmd runs a command to completion and returns its stdout and stderr.
func runCmd(t *testing.T, e env, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(t.Context(), args, e.get, &out, &errOut)
	return out.String(), errOut.String(), err
}

// server is a `syncplane serve` running in the test.
type server struct {
	url    string
	client *http.Client
	stderr *testkit.LockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startServe runs `syncplane serve --addr 127.0.0.1:0 args...` and waits
// until it answers GET /healthz. The listen address is read from its
// "serving" log line.
func startServe(t *testing.T, e env, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stderr: &testkit.LockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	s.client = &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	args = append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)
	go func() { s.done <- run(ctx, args, e.get, io.Discard, s.stderr) }()
	t.Cleanup(func() {
		s.client.CloseIdleConnections()
		s.stop(t)
	})

	deadline := time.Now().Add(10 * time.Second)
	for s.url == "" {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("serve returned %v before serving; stderr:\n%s", err, s.stderr)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address; stderr:\n%s", s.stderr)
		}
		if line := logLine(s.stderr.String(), "serving"); line != nil {
			s.url = "http://" + line["addr"].(string)
		}
	}
	for {
		resp, err := s.client.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz: %v; stderr:\n%s", err, s.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop cancels serve's context and returns what serve returned.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // stop may be called again (by the cleanup)
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not return after its context ended; stderr:\n%s", s.stderr)
		return nil
	}
}

// logLine finds the first JSON log line with msg.
func logLine(logs, msg string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
			return line
		}
	}
	return nil
}

// post sends a JSON body with a bearer token.
func (s *server) post(t *testing.T, path, token string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.url+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

const ts = "2026-11-25T10:00:00.000Z"

// pushUser pushes the creation of User id as the prisma-idb client does and
// fails unless it applied.
func (s *server) pushUser(t *testing.T, tenantID, token, id string) {
	t.Helper()
	ev := map[string]any{"id": "evt-" + id, "entityType": "User", "operation": "create",
		"payload": map[string]any{"id": id, "name": "User " + id, "email": id + "@example.com", "emailVerified": false,
			"image": nil, "createdAt": ts, "updatedAt": ts, "isAnonymous": nil},
		"createdAt": ts, "tries": 0, "lastError": nil, "synced": false, "syncedAt": nil, "retryable": true, "lastAttemptedAt": nil}
	code, body := s.post(t, "/v1/tenants/"+tenantID+"/push", token, map[string]any{"events": []any{ev}})
	if code != http.StatusOK {
		t.Fatalf("push: status %d: %s", code, body)
	}
	var res []struct {
		AppliedChangelogID *string         `json:"appliedChangelogId"`
		Error              json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res) != 1 || res[0].AppliedChangelogID == nil {
		t.Fatalf("push result %s (%v)", body, err)
	}
}

// pullRecords pulls from the start and returns the records.
func (s *server) pullRecords(t *testing.T, tenantID, token string) []map[string]any {
	t.Helper()
	code, body := s.post(t, "/v1/tenants/"+tenantID+"/pull", token, map[string]any{})
	if code != http.StatusOK {
		t.Fatalf("pull: status %d: %s", code, body)
	}
	var resp struct {
		LogsWithRecords []struct {
			Model  string         `json:"model"`
			Record map[string]any `json:"record"`
		} `json:"logsWithRecords"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("pull response %s: %v", body, err)
	}
	var recs []map[string]any
	for _, l := range resp.LogsWithRecords {
		recs = append(recs, l.Record)
	}
	return recs
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// The quick start: serve the demo tenant, mint a token with `syncplane
// token`, push and pull a record over HTTP, shut down gracefully.
func TestServeDemo(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := dbEnv(t, db)
		data := filepath.Join(t.TempDir(), "data")
		srv := startServe(t, e, "--data", data)

		out, _, err := runCmd(t, e, "token", "--tenant", "demo", "--sub", "u1", "--data", data)
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		tok := lastLine(out)
		srv.pushUser(t, "demo", tok, "u1")
		recs := srv.pullRecords(t, "demo", tok)
		if len(recs) != 1 || recs[0]["id"] != "u1" || recs[0]["email"] != "u1@example.com" {
			t.Errorf("pulled %v, want user u1", recs)
		}
		// Another subject's token sees nothing of u1.
		out, _, err = runCmd(t, e, "token", "--tenant", "demo", "--sub", "u2", "--data", data, "--ttl", "1m")
		if err != nil {
			t.Fatal(err)
		}
		if recs := srv.pullRecords(t, "demo", lastLine(out)); len(recs) != 0 {
			t.Errorf("u2 pulled %v", recs)
		}
		// A token of another key is refused.
		forged, _ := auth.SignHS256([]byte(strings.Repeat("x", 32)), auth.SignClaims{Subject: "u1", TTL: time.Minute})
		if code, body := srv.post(t, "/v1/tenants/demo/pull", forged, map[string]any{}); code != http.StatusUnauthorized {
			t.Errorf("forged token: status %d: %s", code, body)
		}

		if err := srv.stop(t); err != nil {
			t.Errorf("serve returned %v after its context ended, want nil (graceful shutdown)", err)
		}
		if logLine(srv.stderr.String(), "shutting down: finishing in-flight requests") == nil {
			t.Errorf("no shutdown log; stderr:\n%s", srv.stderr)
		}
		if _, err := os.Stat(filepath.Join(data, "demo.key")); err != nil {
			t.Errorf("demo key: %v", err)
		}
	})
}

// writeTenant writes a tenant folder with the demo schema and an HS256
// secret file (the same for every tenant, so each has an audience of its
// own: syncplane-ID); extra is appended to the manifest.
func writeTenant(t *testing.T, root, id, extra string) string {
	t.Helper()
	dir := filepath.Join(root, id)
	schema, err := os.ReadFile("../../core/tenant/testdata/kanban.prisma")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"schema.prisma":     string(schema),
		"secret":            secret + "\n",
		tenant.ManifestFile: fmt.Sprintf("id: %s\nschema: schema.prisma\nrootModel: User\nauth:\n  issuer: https://%s.example\n  audience: syncplane-%s\n%s", id, id, id, extra),
	}
	if !strings.Contains(extra, "hs256") && !strings.Contains(extra, "publicKeyFile") && !strings.Contains(extra, "jwksFile") {
		files[tenant.ManifestFile] += "  hs256SecretFile: secret\n"
	}
	for name, src := range files {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A tenants directory with a bad tenant: the good one serves, the bad one
// is logged and answers 404.
func TestServeTenantsDir(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := dbEnv(t, db)
		root := t.TempDir()
		writeTenant(t, root, "acme", "")
		bad := writeTenant(t, root, "broken", "")
		if err := os.WriteFile(filepath.Join(bad, "schema.prisma"), []byte("model User {\n  id String @id\n  oops\n}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		srv := startServe(t, e, "--data", t.TempDir(), "--tenants", root)

		refused := logLine(srv.stderr.String(), "tenant refused")
		if refused == nil || !strings.Contains(fmt.Sprint(refused["err"]), filepath.Join(bad, "schema.prisma")+":") {
			t.Errorf("refusal of the broken tenant not logged with its file; stderr:\n%s", srv.stderr)
		}
		if tenants := fmt.Sprint(logLine(srv.stderr.String(), "serving")["tenants"]); tenants != "[acme]" {
			t.Errorf("serving tenants %s, want [acme]", tenants)
		}

		out, _, err := runCmd(t, e, "token", "--tenants", root, "--tenant", "acme", "--sub", "u1")
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		tok := lastLine(out)
		srv.pushUser(t, "acme", tok, "u1")
		if recs := srv.pullRecords(t, "acme", tok); len(recs) != 1 || recs[0]["id"] != "u1" {
			t.Errorf("pulled %v", recs)
		}
		if code, body := srv.post(t, "/v1/tenants/broken/pull", tok, map[string]any{}); code != http.StatusNotFound {
			t.Errorf("broken tenant: status %d: %s", code, body)
		}
		if err := srv.stop(t); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

func TestServeErrors(t *testing.T) {
	t.Parallel()
	t.Run("case=address-in-use", func(t *testing.T) {
		t.Parallel()
		srv := startServe(t, env{}, "--data", t.TempDir())
		addr := strings.TrimPrefix(srv.url, "http://")
		_, _, err := runCmd(t, env{}, "serve", "--addr", addr, "--data", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("error = %v, want address already in use", err)
		}
	})
	t.Run("case=bad-demo-key", func(t *testing.T) {
		t.Parallel()
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, "demo.key"), []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCmd(t, env{}, "serve", "--addr", "127.0.0.1:0", "--data", data)
		if err == nil || !strings.HasPrefix(err.Error(), "demo key: ") {
			t.Errorf("error = %v, want a demo key error", err)
		}
	})
}

// TestMigrate checks migrate's whole output: without the citus extension
// (SQLite, Debian's PostgreSQL) it prints no line about distributed schemas
// (TestMigrateCitus has them).
func TestMigrate(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := dbEnv(t, db)
		t.Run("tenants=demo", func(t *testing.T) {
			data := t.TempDir()
			for range 2 { // migrating again changes nothing
				out, _, err := runCmd(t, e, "migrate", "--data", data)
				if err != nil {
					t.Fatal(err)
				}
				if out != "migrated tenants: [demo]\n" {
					t.Errorf("stdout %q", out)
				}
			}
		})
		t.Run("tenants=dir", func(t *testing.T) {
			root := t.TempDir()
			writeTenant(t, root, "acme", "")
			writeTenant(t, root, "beta", "")
			writeTenant(t, root, "gamma", "  hs256SecretEnv: GAMMA_SECRET\n") // unset: refused
			out, stderr, err := runCmd(t, e.with("SYNCPLANE_TENANTS_DIR", root), "migrate", "--data", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if out != "migrated tenants: [acme beta]\n" {
				t.Errorf("stdout %q", out)
			}
			if l := logLine(stderr, "tenant refused"); l == nil || !strings.Contains(fmt.Sprint(l["err"]), "GAMMA_SECRET is not set") {
				t.Errorf("gamma's refusal not logged; stderr:\n%s", stderr)
			}
		})
	})
}

func TestToken(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeTenant(t, root, "acme", "")
	writeTenant(t, root, "envkey", "  hs256SecretEnv: ENVKEY_SECRET\n")
	writeTenant(t, root, "pubkey", "  publicKeyFile: key.pem\n")
	e := env{"SYNCPLANE_TENANTS_DIR": root}

	t.Run("case=ok", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, e, "token", "--tenant", "acme", "--sub", "u1", "--ttl", "2h")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(out, "\n") != 1 {
			t.Errorf("stdout %q is not one line", out)
		}
		v, err := auth.NewVerifier(auth.Config{HS256Secret: []byte(secret), Issuer: "https://acme.example", Audience: "syncplane-acme"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(lastLine(out))
		if err != nil {
			t.Fatalf("the token does not verify with acme's secret, issuer and audience: %v", err)
		}
		if c.Subject != "u1" {
			t.Errorf("subject %q", c.Subject)
		}
	})
	t.Run("case=claims", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, e, "token", "--tenant", "acme", "--sub", "u1", "--claim", "email=ada@example.com", "--claim", "name=Ada Lovelace", "--claim", "note=a=b")
		if err != nil {
			t.Fatal(err)
		}
		tok := lastLine(out)
		v, err := auth.NewVerifier(auth.Config{HS256Secret: []byte(secret), Issuer: "https://acme.example", Audience: "syncplane-acme"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(tok); err != nil {
			t.Fatalf("the token does not verify: %v", err)
		}
		parts := strings.Split(tok, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[string]string{"sub": "u1", "email": "ada@example.com", "name": "Ada Lovelace", "note": "a=b", "iss": "https://acme.example"} {
			if claims[k] != want {
				t.Errorf("claim %s = %v, want %q", k, claims[k], want)
			}
		}
	})
	t.Run("case=env-key", func(t *testing.T) {
		t.Parallel()
		out, _, err := runCmd(t, e.with("ENVKEY_SECRET", secret), "token", "--tenant", "envkey", "--sub", "u1")
		if err != nil || !strings.HasPrefix(out, "ey") {
			t.Errorf("token = %q, %v", out, err)
		}
	})

	tests := map[string]struct {
		env  env
		args []string
		want string // the error, with the tenants directory written as ROOT
	}{
		"missing-sub": {
			env:  e,
			args: []string{"--tenant", "acme"},
			want: "token: --tenant and --sub are required",
		},
		"missing-tenant": {
			env:  e,
			args: []string{"--sub", "u1"},
			want: "token: --tenant and --sub are required",
		},
		"unknown-tenant": {
			env:  e,
			args: []string{"--tenant", "nope", "--sub", "u1"},
			want: `token: no tenant "nope" with an HS256 key under ROOT`,
		},
		"public-key-tenant": {
			env:  e,
			args: []string{"--tenant", "pubkey", "--sub", "u1"},
			want: "token: ROOT/pubkey/tenant.yaml: tenant pubkey verifies tokens with a public key; syncplane cannot sign them",
		},
		"env-key-unset": {
			env:  e,
			args: []string{"--tenant", "envkey", "--sub", "u1"},
			want: "token: ROOT/envkey/tenant.yaml: auth: environment variable ENVKEY_SECRET is not set",
		},
		"demo-only-without-tenants-dir": {
			env:  env{},
			args: []string{"--tenant", "acme", "--sub", "u1", "--data", "ROOT/data"},
			want: `token: no tenants directory is configured, so the only tenant is "demo"`,
		},
		"claim-without-value": {
			env:  e,
			args: []string{"--tenant", "acme", "--sub", "u1", "--claim", "email"},
			want: `token: invalid argument "email" for "--claim" flag: "email" is not KEY=VALUE`,
		},
		"claim-reserved": {
			env:  e,
			args: []string{"--tenant", "acme", "--sub", "u1", "--claim", "sub=u2"},
			want: `token: invalid argument "sub=u2" for "--claim" flag: claim "sub" is set by syncplane token itself (--sub, --ttl, the tenant's issuer and audience)`,
		},
		"claim-twice": {
			env:  e,
			args: []string{"--tenant", "acme", "--sub", "u1", "--claim", "email=a@x", "--claim", "email=b@x"},
			want: `token: invalid argument "email=b@x" for "--claim" flag: claim "email" is given twice`,
		},
		"bad-ttl": {
			env:  e,
			args: []string{"--tenant", "acme", "--sub", "u1", "--ttl", "-1h"},
			want: "auth: sign: TTL must be positive, got -1h0m0s",
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			args := []string{"token"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "ROOT", root))
			}
			out, _, err := runCmd(t, tc.env, args...)
			if err == nil {
				t.Fatalf("token succeeded: %q", out)
			}
			if got := strings.ReplaceAll(err.Error(), root, "ROOT"); got != tc.want {
				t.Errorf("error:\n got %s\nwant %s", got, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args []string
		want string
	}{
		"none":            {args: nil, want: "no command"},
		"unknown":         {args: []string{"frobnicate"}, want: `unknown command "frobnicate" (see syncplane --help)`},
		"unknown-flags":   {args: []string{"frobnicate", "--verbose"}, want: "unknown flag: --verbose"},
		"flag-as-command": {args: []string{"--addr", ":9000"}, want: "unknown flag: --addr"},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := runCmd(t, env{}, tc.args...)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %s", err, tc.want)
			}
			for _, cmd := range []string{"serve", "migrate", "compact", "token", "tenant", "policy", "plugin", "version", "completion"} {
				if !strings.Contains(stderr, "\n  "+cmd+" ") {
					t.Errorf("stderr does not list command %s:\n%s", cmd, stderr)
				}
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
	for name, args := range map[string][]string{
		"double-dash": {"serve", "--port", "9"},
		"single-dash": {"serve", "-port", "9"},
	} {
		t.Run("case=bad-flag-"+name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCmd(t, env{}, args...)
			if want := "serve: unknown flag: " + args[1]; err == nil || err.Error() != want {
				t.Errorf("error = %v, want %s", err, want)
			}
			if !strings.Contains(stderr, "--addr") {
				t.Errorf("stderr does not list the flags:\n%s", stderr)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "syncplane.yaml")
	if err := os.WriteFile(file, []byte("addr: 127.0.0.1:7000\ndataDir: /from/file\ntenants: /tenants/file\nlogLevel: debug\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defaults := Config{Addr: ":8080", DataDir: "./data", LogLevel: "info"}
	tests := map[string]struct {
		file string
		env  env
		want Config
	}{
		"defaults": {want: defaults},
		"file": {
			file: file,
			want: Config{Addr: "127.0.0.1:7000", DataDir: "/from/file", TenantsDir: "/tenants/file", LogLevel: "debug"},
		},
		"env-over-file": {
			file: file,
			env: env{"SYNCPLANE_ADDR": "127.0.0.1:7001", "SYNCPLANE_DATA_DIR": "/from/env", "SYNCPLANE_DATABASE_URL": "postgres://db/x",
				"SYNCPLANE_TENANTS_DIR": "/tenants/env", "SYNCPLANE_LOG_LEVEL": "warn"},
			want: Config{Addr: "127.0.0.1:7001", DataDir: "/from/env", DatabaseURL: "postgres://db/x", TenantsDir: "/tenants/env", LogLevel: "warn"},
		},
		"env-without-file": {
			env:  env{"SYNCPLANE_DATA_DIR": "/from/env"},
			want: Config{Addr: ":8080", DataDir: "/from/env", LogLevel: "info"},
		},
		"empty-env-keeps-file": {
			file: file,
			env:  env{"SYNCPLANE_ADDR": ""},
			want: Config{Addr: "127.0.0.1:7000", DataDir: "/from/file", TenantsDir: "/tenants/file", LogLevel: "debug"},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			got, err := loadConfig(tc.file, tc.env.get)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("case=errors", func(t *testing.T) {
		t.Parallel()
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("addr: :1\nport: 9\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		empty := filepath.Join(dir, "empty.yaml")
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadConfig(bad, env{}.get); err == nil || !strings.Contains(err.Error(), "field port not found") {
			t.Errorf("unknown key: %v", err)
		}
		if _, err := loadConfig(filepath.Join(dir, "nope.yaml"), env{}.get); err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("missing file: %v", err)
		}
		if got, err := loadConfig(empty, env{}.get); err != nil || !reflect.DeepEqual(got, defaults) {
			t.Errorf("empty file: %+v, %v", got, err)
		}
	})

	// Through run: the flag beats the environment, which beats the file.
	// `token` for the demo tenant creates the demo key in the data
	// directory it ends up with; serve listens on the address it ends up with.
	t.Run("case=run-precedence", func(t *testing.T) {
		t.Parallel()
		base := t.TempDir()
		cfg := filepath.Join(base, "config.yaml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, "addr: 127.0.0.1:99998\ndataDir: %s\n", filepath.Join(base, "file")), 0o644); err != nil {
			t.Fatal(err)
		}
		e := env{"SYNCPLANE_DATA_DIR": filepath.Join(base, "env")}
		token := []string{"token", "--config", cfg, "--tenant", "demo", "--sub", "u1"}
		if _, _, err := runCmd(t, e, token...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runCmd(t, e, append(token, "--data", filepath.Join(base, "flag"))...); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runCmd(t, env{}, token...); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"file", "env", "flag"} {
			if _, err := os.Stat(filepath.Join(base, d, "demo.key")); err != nil {
				t.Errorf("data directory from the %s: %v", d, err)
			}
		}
		// The file's address cannot be listened on; the env's can be
		// overridden by the flag that startServe passes.
		srv := startServe(t, env{"SYNCPLANE_ADDR": "127.0.0.1:99999"}, "--config", cfg, "--data", filepath.Join(base, "flag"))
		if !strings.HasPrefix(srv.url, "http://127.0.0.1:") {
			t.Errorf("serving at %s", srv.url)
		}
		if err := srv.stop(t); err != nil {
			t.Error(err)
		}
		_, _, err := runCmd(t, env{"SYNCPLANE_ADDR": "127.0.0.1:99999"}, "serve", "--config", cfg, "--data", filepath.Join(base, "flag"))
		if err == nil || !strings.Contains(err.Error(), "99999") {
			t.Errorf("serve on the environment's address: %v", err)
		}
	})
}
