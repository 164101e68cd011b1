package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// smallConfig is a workload that exercises every path in well under a second.
func smallConfig(t *testing.T) Config {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return Config{
		Tenant: "demo", Users: 5, BoardsPerUser: 3, TodosPerBoard: 6, Batch: 7, Clients: 3,
		Mix: Mix{Create: 40, Update: 35, Delete: 25}, Changes: 20, PullLimit: 5,
		RunID: hex.EncodeToString(b[:]), Seed: 42, Now: time.Now(),
	}
}

// startServer runs the demo tenant on a fresh store of db behind httptest.
func startServer(t *testing.T, db storetest.DB) (url string, secret []byte) {
	t.Helper()
	secret = []byte(strings.Repeat("s", 40))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := db.Open(t)
	tn, err := tenant.LoadDemo(context.Background(), secret, tenant.Options{Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	reg := tenant.NewRegistry()
	reg.Put(tn)
	t.Cleanup(func() { _ = reg.Close() })
	srv := httptest.NewServer(httpapi.New(reg, log))
	t.Cleanup(srv.Close)
	return srv.URL, secret
}

func TestRunVerifiesAgainstServer(t *testing.T) {
	for _, db := range storetest.Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			url, secret := startServer(t, db)
			cfg := smallConfig(t)
			cfg.URL, cfg.Tokens = url, SecretTokens(secret, "", "", time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Verified {
				t.Fatalf("verification failed (%d):\n%s", rep.Verify.Failures, rep.Verify.summary())
			}
			p := cfg.plan()
			if rep.Events != p.Events(-1) || rep.Pull.Entries != p.Records() || rep.Push.Batches == 0 {
				t.Errorf("events %d, pulled %d, batches %d; want %d events, and the %d records' latest entries pulled", rep.Events, rep.Pull.Entries, rep.Push.Batches, p.Events(-1), p.Records())
			}
			var ops = map[string]int{}
			for _, u := range p.Users {
				for _, e := range u.Rounds[1] {
					ops[e.Operation]++
					ops[e.EntityType+" "+e.Operation]++
				}
			}
			if ops["create"] == 0 || ops["update"] == 0 || ops["delete"] == 0 || ops["Board delete"] == 0 {
				t.Errorf("second round ops %v: want every kind", ops)
			}

			// The same users pushed again (same event ids) are acknowledged
			// with the same changelog ids, so a rerun still verifies.
			rep2, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !rep2.Verified {
				t.Fatalf("idempotent rerun failed verification:\n%s", rep2.Verify.summary())
			}
		})
	}
}

func TestRunCommandExitCodes(t *testing.T) {
	db := storetest.Databases(t)[0]
	url, secret := startServer(t, db)
	var out, errb strings.Builder
	code := run(context.Background(), []string{"--url", url, "--secret", string(secret), "--users", "2",
		"--boards-per-user", "2", "--todos-per-board", "3", "--clients", "2", "--mix", "50/30/20", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	var rep Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || !rep.Verified || rep.Push.EventsPerSec <= 0 {
		t.Fatalf("--json output %s: %v", out.String(), err)
	}
	out.Reset()
	code = run(context.Background(), []string{"--url", url, "--token-cmd", "echo noise; echo " + token(t, secret, "x") + "-{sub}", "--users", "1"}, &out, &errb)
	if code != 2 {
		t.Fatalf("a bad token: exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"--url", url, "--secret", "x", "--mix", "50/50/10"}, &out, &errb); code != 2 {
		t.Fatalf("a bad mix: exit %d, want 2", code)
	}
}

func token(t *testing.T, secret []byte, sub string) string {
	tok, err := SecretTokens(secret, "", "", time.Hour)(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestCommandTokensTakesLastLine(t *testing.T) {
	tok, err := CommandTokens(`echo "building..."; echo tok-{sub}`)(context.Background(), "u'1")
	if err != nil || tok != "tok-u'1" {
		t.Fatalf("token %q, %v", tok, err)
	}
}

// TestVerifyCatchesFailures feeds VerifyUser a doctored pull of a real plan.
func TestVerifyCatchesFailures(t *testing.T) {
	cfg := smallConfig(t)
	cfg.Users = 1
	u := cfg.plan().Users[0]
	acks := Acks{}
	var good []Entry
	state := map[string]map[string]any{}
	n := 0
	for _, round := range u.Rounds {
		for _, e := range round {
			n++
			cid := fmt.Sprintf("c%06d", n)
			acks[e.ID] = cid
			id := e.Payload["id"].(string)
			good = append(good, Entry{ID: cid, ChangelogID: cid, Model: e.EntityType, KeyPath: []any{id},
				Operation: e.Operation, ScopeKey: u.ID, OutboxEventID: e.ID})
			state[recordKey(e.EntityType, id)] = e.Payload
		}
	}
	// The changelog keeps each record's last entry.
	var all []Entry
	all, good = good, nil
	for i, en := range all {
		if !slices.ContainsFunc(all[i+1:], func(later Entry) bool { return later.Model == en.Model && later.KeyPath[0] == en.KeyPath[0] }) {
			good = append(good, en)
		}
	}
	if len(good) == len(all) {
		t.Fatal("the plan changes no record twice; update this test")
	}
	// Each entry carries the record's current state, as a pull does.
	for i := range good {
		if rec, ok := u.Final[recordKey(good[i].Model, good[i].KeyPath[0].(string))]; ok {
			good[i].Record, _ = json.Marshal(rec)
		}
	}
	check := func(name string, entries []Entry, wantOK bool) {
		t.Helper()
		v := &Verification{}
		VerifyUser(v, u, acks, entries, false)
		if v.OK() != wantOK {
			t.Errorf("%s: ok=%v, want %v: %s", name, v.OK(), wantOK, v.summary())
		}
	}
	check("faithful", good, true)
	check("missing entry", good[:len(good)-1], false)
	check("duplicate entry", append(append([]Entry{}, good...), good[len(good)-1]), false)
	stale := append([]Entry{}, good...)
	for i := range stale {
		if stale[i].Model == "Todo" && len(stale[i].Record) > 0 {
			stale[i].Record = []byte(strings.Replace(string(stale[i].Record), `"title":"`, `"title":"x`, 1))
			break
		}
	}
	check("stale record", stale, false)
	resurrected := append([]Entry{}, good...)
	for i := range resurrected {
		if resurrected[i].Operation == "delete" {
			resurrected[i].Operation = "update"
			resurrected[i].Record, _ = json.Marshal(state[recordKey(resurrected[i].Model, resurrected[i].KeyPath[0].(string))])
			break
		}
	}
	check("deleted record still there", resurrected, false)
	unacked := append([]Entry{}, good...)
	unacked = append(unacked, Entry{ID: "c999999", ChangelogID: "c999999", Model: "Todo", KeyPath: []any{"zz"}, Operation: "create", ScopeKey: u.ID})
	check("unacknowledged entry", unacked, false)
	// An entry a later one of its record superseded, pulled from empty.
	var superseded []Entry
	for _, en := range all {
		if !slices.ContainsFunc(good, func(g Entry) bool { return g.ID == en.ID }) {
			superseded = append([]Entry{en}, good...)
			break
		}
	}
	check("superseded entry", superseded, false)
}

func TestCeilingAgainstPostgres(t *testing.T) {
	pg, ok := storetest.Postgres(t)
	if !ok {
		t.Skip("SYNCPLANE_TEST_DATABASE_URL is not set")
	}
	cfg := smallConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunCeiling(ctx, pg.URL(t), cfg.plan(), cfg.Batch, cfg.Clients, cfg.PullLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Verified {
		t.Fatalf("ceiling verification failed:\n%s", rep.Verify.summary())
	}
	events, records := cfg.plan().Events(-1), cfg.plan().Records()
	for name, pass := range map[string]CeilingPass{"insert": rep.Insert, "copy": rep.Copy} {
		if pass.Push.Events != events || pass.Pull.Entries != records || pass.Push.EventsPerSec <= 0 || pass.Pull.EntriesPerSec <= 0 {
			t.Errorf("%s pass: %+v, want %d events written and %d records' latest entries read", name, pass, events, records)
		}
	}
}
