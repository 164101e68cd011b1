package tenant_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

// The two policies the watch tests switch between. Their answers to
// wQueries differ in every position, so an enforcer that mixed them would
// show.
const (
	wPolicyA = `# A: alice creates boards in team-42, bob pulls there
p, *, $self, *, *, allow
p, admin, *, *, *, allow
p, alice, team-42, Board, create, allow
g, bob, role:viewer, team-42
p, role:viewer, team-42, *, pull, allow
`
	wPolicyB = `# B: bob creates boards in team-42, alice pulls there
p, *, $self, *, *, allow
p, admin, *, *, *, allow
p, bob, team-42, Board, create, allow
g, alice, role:viewer, team-42
p, role:viewer, team-42, *, pull, allow
`
	wRefused  = "tenant reload refused; the last good version keeps serving"
	wReloaded = "tenants reloaded"
	wDebounce = 20 * time.Millisecond
	wDeadline = 20 * time.Second // generous: reloads are slow under -race
)

var (
	wQueries = []struct{ sub, model, act string }{
		{"alice", "Board", "create"},
		{"bob", "Board", "create"},
		{"alice", "Todo", "pull"},
		{"bob", "Todo", "pull"},
	}
	wAnswersA = "1001"
	wAnswersB = "0110"
)

// wAnswers is a tenant's answers to wQueries in scope team-42, one digit
// each.
func wAnswers(t testing.TB, tn *tenant.Tenant) string {
	t.Helper()
	var b strings.Builder
	for _, q := range wQueries {
		ok, err := tn.Policy.Allow(q.sub, nil, "team-42", q.model, q.act)
		if err != nil {
			t.Errorf("Allow(%v): %v", q, err)
			return "error"
		}
		b.WriteString(map[bool]string{true: "1", false: "0"}[ok])
	}
	return b.String()
}

// wLogs is a log destination that tests read while the watcher writes.
type wLogs struct{ testkit.LockedBuffer }

// records returns the JSON log records written so far.
func (l *wLogs) records(t testing.TB) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// wEnv is a tenants directory with a running Watcher.
type wEnv struct {
	root string
	reg  *tenant.Registry
	logs *wLogs
}

// startWatch writes the tenant folders, loads them and watches them until
// the test ends; then it checks that Run returned.
func startWatch(t *testing.T, tenants map[string]map[string]string) *wEnv {
	t.Helper()
	return startWatchAt(t, t.TempDir(), tenants)
}

// startWatchAt is startWatch with the tenants directory at root.
func startWatchAt(t *testing.T, root string, tenants map[string]map[string]string) *wEnv {
	t.Helper()
	e := &wEnv{root: root, logs: &wLogs{}}
	for id, files := range tenants {
		writeFiles(t, filepath.Join(e.root, id), files)
	}
	opt := tenant.Options{
		Store: storetest.Databases(t)[0].Open(t),
		Log:   slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	var errs []error
	e.reg, errs = tenant.LoadDir(context.Background(), e.root, opt)
	if len(errs) > 0 {
		t.Fatalf("load: %v", errs)
	}
	w, err := tenant.NewWatcher(e.reg, e.root, opt, wDebounce)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wDeadline):
			t.Error("Run did not return after its context ended")
		}
	})
	return e
}

// policyTenant is the files of a tenant with policy file policy.csv.
func policyTenant(id, policy string) map[string]string {
	files := goodTenant(id)
	files[tenant.ManifestFile] = manifest(id, "policy: policy.csv\n")
	files["policy.csv"] = policy
	return files
}

// waitAnswers waits until tenant id answers want.
func (e *wEnv) waitAnswers(t testing.TB, id, want string) {
	t.Helper()
	testkit.Eventually(t, wDeadline, 5*time.Millisecond, testkit.Until(fmt.Sprintf("tenant %s answers %s", id, want), func() bool {
		tn := e.reg.Get(id)
		return tn != nil && wAnswers(t, tn) == want
	}))
}

// waitLog waits for a log record after the first `after` ones with message
// msg whose err attribute contains errPart, and returns the number of
// records up to and including it.
func (e *wEnv) waitLog(t testing.TB, after int, msg, errPart string) int {
	t.Helper()
	var n int
	testkit.Eventually(t, wDeadline, 5*time.Millisecond, testkit.Until(fmt.Sprintf("%q is logged with %q", msg, errPart), func() bool {
		recs := e.logs.records(t)
		for i := after; i < len(recs); i++ {
			if err, _ := recs[i]["err"].(string); recs[i]["msg"] == msg && strings.Contains(err, errPart) {
				n = i + 1
				return true
			}
		}
		return false
	}))
	return n
}

// writeAtomic replaces a file the way most editors save: write a temporary
// file, then rename it over the original.
func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestWatch is not parallel with the package's other tests so that it can
// check that its watchers leave no goroutine behind; its subtests run in
// parallel with each other.
func TestWatch(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Run("db="+storetest.Databases(t)[0].Name, func(t *testing.T) {
		t.Run("change=in-place", testWatchInPlace)
		t.Run("change=concurrent", testWatchConcurrent)
		t.Run("change=refused", testWatchRefused)
		t.Run("editor", testWatchSaves)
		t.Run("tenant=added", testWatchAddedTenant)
		t.Run("root=moved", testWatchRootMoved)
		t.Run("root=symlink", testWatchRootSymlink)
		t.Run("watch=cancel", testWatchCancel)
	})
	goleak.VerifyNone(t, before)
}

// A policy file written in place is picked up.
func testWatchInPlace(t *testing.T) {
	t.Parallel()
	e := startWatch(t, map[string]map[string]string{"one": policyTenant("one", wPolicyA)})
	e.waitAnswers(t, "one", wAnswersA)
	writeFiles(t, filepath.Join(e.root, "one"), map[string]string{"policy.csv": wPolicyB})
	e.waitAnswers(t, "one", wAnswersB)
	e.waitLog(t, 0, wReloaded, "")
}

// While requests run, the policy file is replaced many times, alternating
// between two policies: every request decides by one of them, whole, and a
// push decides by the same policy as the tenant it started on.
func testWatchConcurrent(t *testing.T) {
	t.Parallel()
	e := startWatch(t, map[string]map[string]string{"one": policyTenant("one", wPolicyA)})
	mustPush(t, e.reg.Get("one"), "admin", event("User", "create", user("team-42", nil)))

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		seenA  atomic.Int64
		seenB  atomic.Int64
		seq    atomic.Int64
		pushes atomic.Int64
	)
	for g := range 4 {
		wg.Go(func() {
			var lastPush time.Time
			for !stop.Load() {
				tn := e.reg.Get("one")
				answers := wAnswers(t, tn)
				switch answers {
				case wAnswersA:
					seenA.Add(1)
				case wAnswersB:
					seenB.Add(1)
				default:
					t.Errorf("worker %d: answers %s are neither policy A's (%s) nor B's (%s)", g, answers, wAnswersA, wAnswersB)
					return
				}
				// Pushes leave SQLite's write lock free now and then: its
				// busy handler is not fair, and four writers in a tight
				// loop can hold off a reload's migration check for seconds.
				if time.Since(lastPush) < 10*time.Millisecond {
					continue
				}
				lastPush = time.Now()
				pushes.Add(1)
				ev := event("Board", "create", board(fmt.Sprintf("b-%d-%d", g, seq.Add(1)), "team-42"))
				res, err := tn.Push.Push(context.Background(), "alice", nil, []push.Event{ev})
				if err != nil {
					t.Errorf("worker %d: push: %v", g, err)
					return
				}
				applied := res[0].Error == nil
				denied := res[0].Error != nil && res[0].Error.Type == push.ScopeViolation
				if want := answers[0] == '1'; (want && !applied) || (!want && !denied) {
					t.Errorf("worker %d: under the policy answering %s alice's board push gave %+v", g, answers, res[0].Error)
					return
				}
			}
		})
	}
	policyFile := filepath.Join(e.root, "one", "policy.csv")
	for i := range 12 {
		// Some rounds write a burst that the debounce folds into one
		// reload. The files are replaced by rename: written in place, a
		// reload could read a file half written (truncated, refused).
		for j := range i % 3 {
			writeAtomic(t, policyFile, []string{wPolicyA, wPolicyB}[j%2])
		}
		policy, want := wPolicyA, wAnswersA
		if i%2 == 0 {
			policy, want = wPolicyB, wAnswersB
		}
		writeAtomic(t, policyFile, policy)
		e.waitAnswers(t, "one", want)
		if t.Failed() {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if seenA.Load() == 0 || seenB.Load() == 0 || pushes.Load() == 0 {
		t.Errorf("workers saw policy A %d times and B %d times and pushed %d times; want all", seenA.Load(), seenB.Load(), pushes.Load())
	}
	for _, r := range e.logs.records(t) {
		if r["msg"] == wRefused {
			t.Errorf("a reload was refused: %v", r["err"])
		}
	}
}

// A malformed or empty policy file is refused with its file and line, and
// the old decisions hold; a valid one is then accepted again.
func testWatchRefused(t *testing.T) {
	t.Parallel()
	e := startWatch(t, map[string]map[string]string{"one": policyTenant("one", wPolicyA)})
	dir := filepath.Join(e.root, "one")
	policyFile := filepath.Join(dir, "policy.csv")
	good := e.reg.Get("one")

	cases := []struct {
		name, content, errPart string
	}{
		{"malformed", strings.Replace(wPolicyB, "Board, create", "Board, fly", 1), policyFile + ":4: unknown action"},
		{"empty", "", policyFile + ": policy has no p lines"},
	}
	logged := 0
	for _, c := range cases {
		writeFiles(t, dir, map[string]string{"policy.csv": c.content})
		logged = e.waitLog(t, logged, wRefused, c.errPart)
		rec := e.logs.records(t)[logged-1]
		if rec["level"] != "ERROR" {
			t.Errorf("policy=%s: refusal logged at level %v, want ERROR", c.name, rec["level"])
		}
		if got := e.reg.Get("one"); got != good {
			t.Errorf("policy=%s: the refused tenant replaced its last good version", c.name)
		}
		if got := wAnswers(t, e.reg.Get("one")); got != wAnswersA {
			t.Errorf("policy=%s: answers %s after the refusal, want the old %s", c.name, got, wAnswersA)
		}
	}
	writeFiles(t, dir, map[string]string{"policy.csv": wPolicyB})
	e.waitAnswers(t, "one", wAnswersB)
}

// Editors' ways of saving all trigger a reload.
func testWatchSaves(t *testing.T) {
	t.Parallel()
	saves := map[string]func(t *testing.T, path, content string){
		"rename-over": func(t *testing.T, path, content string) { writeAtomic(t, path, content) },
		// vim with backupcopy=no: move the original aside, write a new
		// file, delete the backup.
		"backup-then-write": func(t *testing.T, path, content string) {
			if err := os.Rename(path, path+"~"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path + "~"); err != nil {
				t.Fatal(err)
			}
		},
		// A Kubernetes ConfigMap volume: the file is a symlink through
		// "..data", a symlink to a timestamped folder that is swapped by
		// rename.
		"configmap-swap": func(t *testing.T, path, content string) {
			dir := filepath.Dir(path)
			ts := fmt.Sprintf("..%d", time.Now().UnixNano())
			writeFiles(t, filepath.Join(dir, ts), map[string]string{filepath.Base(path): content})
			if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, save := range saves {
		t.Run("save="+name, func(t *testing.T) {
			t.Parallel()
			files := policyTenant("one", wPolicyA)
			if name == "configmap-swap" {
				files = policyTenant("one", "")
				delete(files, "policy.csv")
				files["..1/policy.csv"] = wPolicyA
			}
			e := startWatch(t, nil)
			dir := filepath.Join(e.root, "one")
			if name == "configmap-swap" {
				writeFiles(t, dir, files)
				for _, l := range [][2]string{{"..1", "..data"}, {"..data/policy.csv", "policy.csv"}} {
					if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				writeFiles(t, dir, files)
			}
			e.waitAnswers(t, "one", wAnswersA)
			save(t, filepath.Join(dir, "policy.csv"), wPolicyB)
			e.waitAnswers(t, "one", wAnswersB)
		})
	}
}

// A tenant folder added later is loaded, and its schema folder is watched.
func testWatchAddedTenant(t *testing.T) {
	t.Parallel()
	e := startWatch(t, map[string]map[string]string{"one": goodTenant("one")})
	// Written file by file, as a copy would: the first reloads may see it
	// incomplete and refuse it.
	two := filepath.Join(e.root, "two")
	writeFiles(t, two, map[string]string{
		tenant.ManifestFile:    strings.Replace(manifest("two", ""), "schema: schema.prisma", "schema: models", 1),
		"secret":               otherSecret, // not one's: tenants sharing a key need audiences
		"models/kanban.prisma": kanban,
	})
	testkit.Eventually(t, wDeadline, 5*time.Millisecond, testkit.Until("tenant two is loaded", func() bool { return e.reg.Get("two") != nil }))
	if e.reg.Get("one") == nil {
		t.Fatal("tenant one is gone")
	}

	additive := strings.Replace(kanban, "  title       String\n", "  title       String\n  priority    Int?\n", 1)
	writeFiles(t, filepath.Join(two, "models"), map[string]string{"kanban.prisma": additive})
	testkit.Eventually(t, wDeadline, 5*time.Millisecond, testkit.Until("tenant two's schema change is loaded", func() bool {
		return e.reg.Get("two").Schema.Model("Todo").Field("priority") != nil
	}))
}

// While the tenants directory is gone, nothing is reloaded and every
// tenant keeps serving; once it is back, it is reloaded and watched again.
func testWatchRootMoved(t *testing.T) {
	t.Parallel()
	e := startWatch(t, map[string]map[string]string{"one": policyTenant("one", wPolicyA)})
	aside := e.root + ".aside"
	if err := os.Rename(e.root, aside); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(aside, "one"), map[string]string{"policy.csv": wPolicyB})
	n := e.waitLog(t, 0, "tenants directory is unreadable; every tenant keeps serving its last good version", "")
	if tn := e.reg.Get("one"); tn == nil || wAnswers(t, tn) != wAnswersA {
		t.Fatal("tenant one changed while the tenants directory was away")
	}
	if err := os.Rename(aside, e.root); err != nil {
		t.Fatal(err)
	}
	e.waitLog(t, n, wReloaded, "") // no event tells: the retry finds it
	e.waitAnswers(t, "one", wAnswersB)
	writeFiles(t, filepath.Join(e.root, "one"), map[string]string{"policy.csv": wPolicyA})
	e.waitAnswers(t, "one", wAnswersA)
}

// A tenants directory that is a symbolic link is followed.
func testWatchRootSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "tenants")); err != nil {
		t.Fatal(err)
	}
	e := startWatchAt(t, filepath.Join(dir, "tenants"), map[string]map[string]string{"one": policyTenant("one", wPolicyA)})
	writeFiles(t, filepath.Join(dir, "real", "one"), map[string]string{"policy.csv": wPolicyB})
	e.waitAnswers(t, "one", wAnswersB)
}

// Watch returns once its context ends, and at once when the tenants
// directory cannot be watched.
func testWatchCancel(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	opt := tenant.Options{Store: storetest.Databases(t)[0].Open(t), Log: quietLog()}
	if err := tenant.Watch(context.Background(), tenant.NewRegistry(), filepath.Join(root, "missing"), opt, 0); err == nil {
		t.Error("Watch of a missing directory: no error")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tenant.Watch(ctx, tenant.NewRegistry(), root, opt, 0) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch: %v", err)
		}
	case <-time.After(wDeadline):
		t.Fatal("Watch did not return after its context ended")
	}
}
