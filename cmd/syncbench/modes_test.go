package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncplane/syncplane/core/storetest"
)

func TestReferenceAgainstPostgres(t *testing.T) {
	pg, ok := storetest.Postgres(t)
	if !ok {
		t.Skip("SYNCPLANE_TEST_DATABASE_URL is not set")
	}
	cfg := smallConfig(t)
	p := cfg.plan()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pg.URL(t)
	rep, err := RunReference(ctx, dsn, p, cfg.Batch, cfg.Clients, cfg.PullLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Fatalf("reference verification failed:\n%s", rep.Verify.summary())
	}
	seqUsers := (cfg.Users + cfg.Clients - 1) / cfg.Clients
	seqEvents := (&Plan{Users: p.Users[:seqUsers]}).Events(-1)
	for name, c := range map[string]struct {
		pass            ReferencePass
		clients, events int
	}{
		"concurrent": {rep.Concurrent, cfg.Clients, p.Events(-1)},
		"sequential": {rep.Sequential, 1, seqEvents},
	} {
		if c.pass.Clients != c.clients || c.pass.Push.Events != c.events || c.pass.Pull.Entries != c.events ||
			c.pass.Push.EventsPerSec <= 0 || c.pass.Push.Batches == 0 {
			t.Errorf("%s pass %+v, want %d clients writing and reading back %d events", name, c.pass, c.clients, c.events)
		}
		// BEGIN, idempotency lookup, scope lookup (not for a User),
		// write, changelog insert, COMMIT.
		if c.pass.RoundTrips <= 5 || c.pass.RoundTrips > 6 {
			t.Errorf("%s pass: %.2f round trips per event, want about 6", name, c.pass.RoundTrips)
		}
	}

	// The reference checks scopes and is idempotent: a second user's
	// Todo on the first user's board is refused; an applied event
	// answers its changelog id again without writing.
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, s := range referenceDDL() {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	a, b := p.Users[0], p.Users[1]
	acks := Acks{}
	for _, ev := range a.Rounds[0][:2] { // the user and a board
		if _, err := referenceEvent(ctx, pool, a.ID, ev, acks); err != nil {
			t.Fatal(err)
		}
	}
	board := a.Rounds[0][1]
	if board.EntityType != "Board" {
		t.Fatalf("second event is a %s", board.EntityType)
	}
	foreign := Event{ID: "foreign", EntityType: "Todo", Operation: "create", Payload: map[string]any{
		"id": "t-foreign", "title": "x", "description": nil, "isCompleted": false,
		"createdAt": board.Payload["createdAt"], "boardId": board.Payload["id"]}}
	if _, err := referenceEvent(ctx, pool, b.ID, foreign, Acks{}); !errors.Is(err, errScope) {
		t.Errorf("a todo on another scope's board: %v, want a scope error", err)
	}
	again := Acks{}
	n, err := referenceEvent(ctx, pool, a.ID, board, again)
	if err != nil || again[board.ID] != acks[board.ID] || n != 3 {
		t.Errorf("replayed event: %d statements, changelog id %q (want %q), %v", n, again[board.ID], acks[board.ID], err)
	}
	_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+qi(ceilingSchema)+" CASCADE")
}

func TestSSEIdle(t *testing.T) {
	bin := syncplaneBin(t)
	for _, db := range storetest.Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := RunSSEIdle(ctx, SSEIdleConfig{Conns: 50, Subjects: 10, Settle: 100 * time.Millisecond,
				Serve: ServeConfig{Bin: bin, PostgresURL: db.AdminURL}}, &strings.Builder{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.Established != 50 || rep.Failed != 0 || rep.Database != db.Name {
				t.Fatalf("report %+v", rep)
			}
			if rep.PokeSubscribers != 5 || rep.PokeReceived != 5 || rep.PokeUnexpected != 0 {
				t.Errorf("poke: %d of %d subscribers, %d unexpected; want 5 of 5, none unexpected",
					rep.PokeReceived, rep.PokeSubscribers, rep.PokeUnexpected)
			}
			if rep.RSSBeforeBytes <= 0 || rep.RSSAfterBytes <= 0 || rep.GoroutinesBefore <= 0 ||
				rep.GoroutinesAfter < rep.GoroutinesBefore+50 {
				t.Errorf("server figures %+v: want RSS and at least a goroutine per stream", rep)
			}
			var out strings.Builder
			printSSEIdle(&out, rep)
			if !strings.Contains(out.String(), "50 of 50") || !strings.Contains(out.String(), "ok:") {
				t.Errorf("printed:\n%s", out.String())
			}
		})
	}
}

// TestStandard runs the standard scenario at a small size: every database
// available, with the ceiling and the reference on PostgreSQL.
func TestStandard(t *testing.T) {
	sc := StandardConfig{Bin: syncplaneBin(t), DBs: []string{"sqlite"}, Workload: smallConfig(t)}
	if pg, ok := storetest.Postgres(t); ok {
		sc.PostgresURL, sc.DBs = pg.AdminURL, []string{"sqlite", "postgres"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunStandard(ctx, sc, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified || len(rep.Runs) != len(sc.DBs) {
		t.Fatalf("verified %v, %d runs", rep.Verified, len(rep.Runs))
	}
	var out strings.Builder
	printStandard(&out, rep)
	text := out.String()
	for _, want := range append([]string{"syncplane push events/s", "server RSS peak"}, sc.DBs...) {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	if sc.PostgresURL != "" {
		if rep.Ceiling == nil || rep.Reference == nil || rep.Runs[1].Ratio.PushVsReferenceSequential <= 0 {
			t.Fatalf("no ceiling or reference: %+v", rep)
		}
		for _, want := range []string{"ceiling COPY", "reference 1 client"} {
			if !strings.Contains(text, want) {
				t.Errorf("table lacks %q:\n%s", want, text)
			}
		}
	}
	t.Log("\n" + text)
}
