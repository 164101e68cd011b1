package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
)

// TestPokeLatencyCommand runs `syncbench poke-latency --json` on two
// servers sharing a scratch database: every push is acknowledged by B and
// poked on A's stream with its changelog id, and everything started is
// gone afterwards. Correctness only: no timing is asserted.
func TestPokeLatencyCommand(t *testing.T) {
	pg, ok := storetest.Postgres(t)
	if !ok {
		t.Skip("SYNCPLANE_TEST_DATABASE_URL is not set")
	}
	const pushes = 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb strings.Builder
	code := run(ctx, []string{"poke-latency", "--postgres", pg.AdminURL, "--pushes", "20",
		"--server-bin", syncplaneBin(t), "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out.String(), errb.String())
	}
	var rep PokeLatencyReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("--json output %s: %v", out.String(), err)
	}
	if !rep.OK || rep.Pushes != pushes || rep.Acked != pushes || rep.Poked != pushes || rep.Missing != 0 ||
		rep.Late != 0 || rep.Duplicate != 0 || rep.Unexpected != 0 || len(rep.Failures) != 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.ServerAPID <= 0 || rep.ServerBPID <= 0 || rep.ServerAPID == rep.ServerBPID || rep.Scope != "u1" {
		t.Errorf("servers A %d and B %d, scope %q", rep.ServerAPID, rep.ServerBPID, rep.Scope)
	}
	if rep.PokeBeforeAck < 0 || rep.PokeBeforeAck > rep.Poked {
		t.Errorf("%d pokes before their answer, of %d", rep.PokeBeforeAck, rep.Poked)
	}
	for name, s := range map[string]LatencyStats{"sent→poke": rep.SentToPoke, "sent→ack": rep.SentToAck, "ack→poke": rep.AckToPoke} {
		if s.P50Ms < 0 || s.P50Ms > s.P90Ms || s.P90Ms > s.P99Ms || s.P99Ms > s.MaxMs {
			t.Errorf("%s: %+v are not ordered percentiles", name, s)
		}
	}
	if rep.SentToPoke.MaxMs <= 0 || rep.SentToAck.MaxMs <= 0 {
		t.Errorf("no latency measured: %+v", rep)
	}

	// Both servers stopped, the scratch database dropped.
	waitGone(t, rep.ServerAPID)
	waitGone(t, rep.ServerBPID)
	if !strings.HasPrefix(rep.Database, "syncbench_") {
		t.Fatalf("database %q", rep.Database)
	}
	conn, err := pgx.Connect(ctx, pg.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", rep.Database).Scan(&n); err != nil || n != 0 {
		t.Errorf("database %s: %d left (%v)", rep.Database, n, err)
	}

	// The text report.
	out.Reset()
	errb.Reset()
	code = run(ctx, []string{"poke-latency", "--postgres", pg.AdminURL, "--pushes", "3", "--server-bin", syncplaneBin(t)}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "ok: 3 of 3 pushes") || !strings.Contains(out.String(), "sent → poke") {
		t.Fatalf("exit %d:\n%s\n%s", code, out.String(), errb.String())
	}
}

func TestListenApplicationName(t *testing.T) {
	if listenApplicationName != store.ListenApplicationName {
		t.Fatalf("listenApplicationName %q, the store's %q", listenApplicationName, store.ListenApplicationName)
	}
}

// TestPokeMatcher pairs pokes with pushes: in time (before or after the
// answer), late, duplicate, of another scope or of no push; anything but
// every push poked in time fails.
func TestPokeMatcher(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	m := newPokeMatcher("u1", 4)

	m.acked(0, "c0", at(0), at(2))
	if !m.take(pokeEvent{"u1", "c0", at(3)}, 0) {
		t.Fatal("push 0's poke not taken")
	}
	m.acked(1, "c1", at(10), at(14))
	if !m.take(pokeEvent{"u1", "c1", at(12)}, 1) { // before the answer
		t.Fatal("push 1's poke not taken")
	}
	if m.take(pokeEvent{"u1", "c1", at(15)}, 1) { // again
		t.Fatal("a duplicate poke taken")
	}
	m.acked(2, "c2", at(20), at(21))
	m.giveUp(2)
	m.acked(3, "c3", at(30), at(31))
	for _, p := range []pokeEvent{{"u1", "c2", at(32)}, {"u2", "c3", at(32)}, {"u1", "zz", at(32)}} {
		if m.take(p, 3) {
			t.Fatalf("poke %+v taken for push 3", p)
		}
	}
	if !m.take(pokeEvent{"u1", "c3", at(35)}, 3) {
		t.Fatal("push 3's poke not taken")
	}

	rep := &PokeLatencyReport{Pushes: 4}
	m.report(rep)
	if rep.Acked != 4 || rep.Poked != 3 || rep.Missing != 1 || rep.Late != 1 || rep.Duplicate != 1 || rep.Unexpected != 2 ||
		rep.PokeBeforeAck != 1 || rep.OK || len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "push 2") {
		t.Fatalf("report %+v", rep)
	}
	// Pushes 0, 1, 3: sent→poke 3, 2, 5 ms; sent→ack 2, 4, 1 ms;
	// ack→poke 1, 0 (-2), 4 ms.
	want := map[string]LatencyStats{
		"sent→poke": {P50Ms: 3, P90Ms: 5, P99Ms: 5, MaxMs: 5},
		"sent→ack":  {P50Ms: 2, P90Ms: 4, P99Ms: 4, MaxMs: 4},
		"ack→poke":  {P50Ms: 1, P90Ms: 4, P99Ms: 4, MaxMs: 4},
	}
	for name, got := range map[string]LatencyStats{"sent→poke": rep.SentToPoke, "sent→ack": rep.SentToAck, "ack→poke": rep.AckToPoke} {
		if got != want[name] {
			t.Errorf("%s %+v, want %+v", name, got, want[name])
		}
	}
	var out strings.Builder
	printPokeLatency(&out, rep)
	if !strings.Contains(out.String(), "FAILED: 4 of 4 pushes acknowledged, 3 poked, 1 missing") ||
		!strings.Contains(out.String(), "1 late, 1 duplicate, 2 unexpected") {
		t.Errorf("report:\n%s", out.String())
	}

	// A push never poked at all; one never acknowledged.
	m = newPokeMatcher("u1", 2)
	m.acked(0, "c0", at(0), at(1))
	m.giveUp(0)
	rep = &PokeLatencyReport{Pushes: 2}
	m.report(rep)
	if rep.OK || rep.Acked != 1 || rep.Poked != 0 || rep.Missing != 1 || !strings.Contains(strings.Join(rep.Failures, "\n"), "no poke") {
		t.Fatalf("report %+v", rep)
	}
}

// TestPokeLatencyFlags checks the command's refusals, which come before
// anything is built or started.
func TestPokeLatencyFlags(t *testing.T) {
	for _, args := range [][]string{
		{"poke-latency", "--pushes", "0"},
		{"poke-latency", "--postgres", ""},
		{"poke-latency", "extra"},
		{"poke-latency", "--no-such-flag"},
	} {
		var out, errb strings.Builder
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	if _, err := StartServer(context.Background(), ServeConfig{Bin: "/nonexistent", PostgresURL: "postgres://x", DatabaseURL: "postgres://y"}); err == nil {
		t.Error("StartServer with both a PostgreSQL server and a database: no error")
	}
}
