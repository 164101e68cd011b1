//go:build linux

package kanbanrulesnode_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/testkit"
)

// noReads is a pluginhost.Reader; these rules never read, so any call fails the test.
type noReads struct{ t *testing.T }

func (r noReads) Find(context.Context, []string, string, map[string]any, int) ([]json.RawMessage, error) {
	r.t.Error("the plugin read through the host (Find)")
	return nil, nil
}

func (r noReads) Count(context.Context, []string, string, map[string]any) (int64, error) {
	r.t.Error("the plugin read through the host (Count)")
	return 0, nil
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// pluginPIDs returns the running processes of this folder's dist/main.js
// that are children of this test process (other test binaries may run the
// plugin at the same time).
func pluginPIDs(t *testing.T, dir string) map[int]bool {
	t.Helper()
	main := []byte(filepath.Join(dir, "dist", "main.js"))
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{}
	for _, stat := range stats {
		var pid int
		if _, err := fmt.Sscanf(stat, "/proc/%d/stat", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(stat)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		var state byte
		var ppid int
		if i := bytes.LastIndexByte(b, ')'); i < 0 {
			continue
		} else if _, err := fmt.Sscanf(string(b[i+1:]), " %c %d", &state, &ppid); err != nil || ppid != os.Getpid() {
			continue
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cmdline, main) {
			pids[pid] = true
		}
	}
	return pids
}

func tevent(model, op, payload string) syncdata.ValidationEvent {
	return syncdata.ValidationEvent{ID: model + "-" + op, Model: model, Operation: op, Key: json.RawMessage(`["k1"]`), Payload: json.RawMessage(payload), Scope: "u1"}
}

// The plugin under syncplane's real host (core/pluginhost): checksum of the
// wrapper, prlimit's default limits, no host environment, host reads
// offered through the broker, Close kills it.
func TestUnderPluginHost(t *testing.T) {
	path := requireBuilt(t)
	dir := filepath.Dir(path)
	t.Setenv("SYNCPLANE_TEST_SECRET", "database-password")
	logs := &testkit.LockedBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	}()
	before := pluginPIDs(t, dir)

	h := pluginhost.New(pluginhost.Config{
		Tenant:  "acme",
		Command: path,
		SHA256:  sha256File(t, path),
		Timeout: 10 * time.Second, // a cold start of node under -race on a busy CI machine
	}, noReads{t}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer h.Close()

	got, err := h.Validate(context.Background(), "u1", []syncdata.ValidationEvent{
		tevent("Todo", "create", `{"id":"t1","title":"`+strings.Repeat("x", 201)+`","boardId":"b1"}`),
		tevent("Todo", "create", `{"id":"t2","title":"buy milk","boardId":"b1"}`),
		tevent("Board", "create", `{"id":"b1","name":" ","userId":"u1"}`),
		tevent("Board", "create", `{"id":"b2","name":"Inbox","userId":"u1"}`),
	})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := []syncdata.Verdict{
		{Message: "todo title must be at most 200 characters (it has 201)"},
		{Allow: true},
		{Message: "board name must not be empty"},
		{Allow: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}

	name, version, _, err := h.Info(context.Background())
	if err != nil || name != "kanban-rules-node" || version == "" {
		t.Errorf("Info = %q, %q, %v; want kanban-rules-node, a version, no error", name, version, err)
	}

	var pids []int
	for pid := range pluginPIDs(t, dir) {
		if !before[pid] {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("plugin processes started by the host: %v, want one", pids)
	}
	pid := pids[0]
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("SYNCPLANE_TEST_SECRET")) {
		t.Error("the server's SYNCPLANE_TEST_SECRET reached the plugin")
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(limits, []byte(fmt.Sprint(pluginhost.DefaultMemoryBytes))) {
		t.Errorf("plugin runs without the default address-space limit:\n%s", limits)
	}

	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("plugin process %d still there after Close (signal 0: %v)", pid, err)
	}
}

// A wrapper whose sha256 does not match the manifest is not started.
func TestUnderPluginHostWrongChecksum(t *testing.T) {
	path := requireBuilt(t)
	before := pluginPIDs(t, filepath.Dir(path))
	h := pluginhost.New(pluginhost.Config{Tenant: "acme", Command: path, SHA256: strings.Repeat("0", 64)}, nil, nil)
	defer h.Close()
	_, err := h.Validate(context.Background(), "u1", []syncdata.ValidationEvent{tevent("Todo", "create", `{"title":"ok"}`)})
	if !errors.Is(err, pluginhost.ErrUnavailable) {
		t.Fatalf("Validate with a wrong checksum: %v, want ErrUnavailable", err)
	}
	for pid := range pluginPIDs(t, filepath.Dir(path)) {
		if !before[pid] {
			t.Errorf("plugin process %d started despite the wrong checksum", pid)
		}
	}
}
