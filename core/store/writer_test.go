package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/testkit"
)

// TestSQLiteWritersTakeTurns: on SQLite the writes of one process wait for
// each other in the process, never for the file's lock. With a busy
// timeout of 0, a write that met the lock held by another connection of
// the process would fail at once with SQLITE_BUSY; concurrent write
// transactions, writes outside a transaction (stored cursors) and reads all
// succeed, and every write is there.
func TestSQLiteWritersTakeTurns(t *testing.T) {
	t.Parallel()
	st, err := store.OpenSQLite(t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tn := kanbanTenant(t, st, "acme")
	ctx := t.Context()
	const writers, txs = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, 3*writers*txs)
	for w := range writers {
		wg.Add(3)
		go func() { // write transactions
			defer wg.Done()
			for i := range txs {
				id := fmt.Sprintf("w%d-%d", w, i)
				x, err := tn.Begin(ctx)
				if err != nil {
					errs <- fmt.Errorf("Begin: %w", err)
					return
				}
				err = x.Upsert(ctx, "Workspace", []schema.Record{workspace(id)})
				if err == nil {
					err = x.AppendChangelog(ctx, []changelog.Entry{{ID: id, Model: "Workspace", KeyPath: []byte(`["` + id + `"]`),
						Operation: changelog.Create, ScopeKey: id, OutboxEventID: id}}, map[string]string{id: id})
				}
				if err != nil {
					_ = x.Rollback()
					errs <- fmt.Errorf("write %s: %w", id, err)
					return
				}
				if err := x.Commit(); err != nil {
					errs <- fmt.Errorf("commit %s: %w", id, err)
					return
				}
			}
		}()
		go func() { // writes outside a transaction
			defer wg.Done()
			for i := range txs {
				if err := tn.SaveCursor(ctx, fmt.Sprintf("c%d-%d", w, i), []byte(`{}`)); err != nil {
					errs <- fmt.Errorf("SaveCursor: %w", err)
					return
				}
			}
		}()
		go func() { // reads
			defer wg.Done()
			for i := range txs {
				if _, err := tn.Load(ctx, "Workspace", []string{"id"}, [][]any{{fmt.Sprintf("w%d-%d", w, i)}}); err != nil {
					errs <- fmt.Errorf("Load: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		for i := range txs {
			id := fmt.Sprintf("w%d-%d", w, i)
			if got, err := tn.Load(ctx, "Workspace", []string{"id"}, [][]any{{id}}); err != nil || len(got) != 1 {
				t.Errorf("Load(%s) = %v, %v; want the record", id, got, err)
			}
			if _, err := tn.LoadCursor(ctx, fmt.Sprintf("c%d-%d", w, i)); err != nil {
				t.Errorf("LoadCursor(c%d-%d): %v", w, i, err)
			}
		}
	}
}

// TestSQLiteTurnWait: a write transaction that waits for its turn gives up
// when its context ends, and the turn goes on to the next one.
func TestSQLiteTurnWait(t *testing.T) {
	t.Parallel()
	st, err := store.OpenSQLite(t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tn := kanbanTenant(t, st, "acme")
	first, err := tn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if x, err := tn.Begin(ctx); !errors.Is(err, context.Canceled) {
		if err == nil {
			_ = x.Rollback()
		}
		t.Fatalf("Begin while another transaction writes, context canceled: %v; want context.Canceled", err)
	}
	next := make(chan error, 1)
	go func() {
		x, err := tn.Begin(t.Context())
		if err == nil {
			err = x.Upsert(t.Context(), "Workspace", []schema.Record{workspace("next")})
			if err == nil {
				err = x.Commit()
			} else {
				_ = x.Rollback()
			}
		}
		next <- err
	}()
	if err := first.Upsert(t.Context(), "Workspace", []schema.Record{workspace("first")}); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := first.Rollback(); err != nil { // after Commit: nothing, and the turn is not given up twice
		t.Fatal(err)
	}
	if err := <-next; err != nil {
		t.Fatalf("the transaction after: %v", err)
	}
	x, err := tn.Begin(t.Context())
	if err != nil {
		t.Fatalf("Begin after both: %v", err)
	}
	if err := x.Rollback(); err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteTurnAbandoned: a write transaction abandoned without Commit or
// Rollback (a handler that panicked) gives up its turn when its context
// ends, and the next write transaction of the tenant begins and commits.
func TestSQLiteTurnAbandoned(t *testing.T) {
	t.Parallel()
	tn := sqliteTenant(t)
	ctx, cancel := context.WithCancel(t.Context())
	abandoned, err := tn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := abandoned.Upsert(ctx, "Workspace", []schema.Record{workspace("abandoned")}); err != nil {
		t.Fatal(err)
	}
	cancel() // and never Commit nor Rollback
	next, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	if err := writeTx(next, tn, "next"); err != nil {
		t.Fatalf("the transaction after the abandoned one: %v", err)
	}
	if got := load(t, tn, "Workspace", "id", "abandoned", "next"); len(got) != 1 || got[0]["id"] != "next" {
		t.Errorf("Workspaces = %v; want only the one of the transaction after", got)
	}
}

// TestSQLiteTurnOnce: a transaction that ends gives up its turn once, also
// when its context ends afterwards: the transactions after it still take
// turns, each waiting for the one before, and none waits for good.
func TestSQLiteTurnOnce(t *testing.T) {
	t.Parallel()
	tn := sqliteTenant(t)
	for i := range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		err := promptly(func() error { return writeTx(ctx, tn, fmt.Sprintf("w%d", i)) })
		cancel()
		if err != nil {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	first, err := tn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- writeTx(t.Context(), tn, "second") }()
	select {
	case err := <-second:
		t.Fatalf("a transaction ended (%v) while another held the turn", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := promptly(first.Commit); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := promptly(func() error { return <-second }); err != nil {
		t.Fatalf("the transaction that waited: %v", err)
	}
	if err := promptly(func() error { return writeTx(t.Context(), tn, "last") }); err != nil {
		t.Fatalf("the transaction after both: %v", err)
	}
}

// sqliteTenant opens the kanban tenant of a new SQLite store.
func sqliteTenant(t *testing.T) *store.Tenant {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return kanbanTenant(t, st, "acme")
}

// writeTx writes the workspace id in a write transaction of ctx.
func writeTx(ctx context.Context, tn *store.Tenant, id string) error {
	x, err := tn.Begin(ctx)
	if err != nil {
		return err
	}
	if err := x.Upsert(ctx, "Workspace", []schema.Record{workspace(id)}); err != nil {
		_ = x.Rollback()
		return err
	}
	return x.Commit()
}

// promptly returns f's error, or an error when f has not returned within
// 10 s (f goes on alone).
func promptly(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("still waiting after 10 s")
	}
}

// TestSQLiteCheckpointsInBackground: the commits of a tenant's file reach
// the file itself (a checkpoint) in the background, long before the WAL
// grows to the size at which the writer would checkpoint after a commit.
func TestSQLiteCheckpointsInBackground(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.OpenSQLite(dir, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tn := kanbanTenant(t, st, "acme")
	file := filepath.Join(dir, "tenants", "acme.db")
	size := func() int64 {
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	for i := range 10 {
		recs := make([]schema.Record, 100)
		for j := range recs {
			recs[j] = workspace(fmt.Sprintf("w%d-%d-%s", i, j, strings.Repeat("x", 200)))
		}
		upsert(t, tn, "Workspace", recs...)
	}
	// 1,000 records of over 400 bytes: well over 100 pages, far below the
	// WAL's bound.
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, testkit.Until("the writes are checkpointed", func() bool {
		return size() >= before+100*4096
	}))
}

// TestSQLiteWALStartsOver: write transactions that follow each other
// without a pause never leave the WAL alone for a checkpoint to reach its
// end, which SQLite needs to start the WAL over rather than append to it;
// past its bound, a checkpoint that holds the turn to write lets the next
// write start it over (which counts in the WAL's header).
func TestSQLiteWALStartsOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.OpenSQLite(dir, time.Second, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	tn := kanbanTenant(t, st, "acme")
	wal := filepath.Join(dir, "tenants", "acme.db-wal")
	starts := func() uint32 { // the WAL header's checkpoint sequence number
		b := make([]byte, 16)
		f, err := os.Open(wal)
		if err != nil {
			return 0
		}
		defer f.Close()
		if _, err := io.ReadFull(f, b); err != nil {
			return 0
		}
		return binary.BigEndian.Uint32(b[12:])
	}
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				recs := make([]schema.Record, 40)
				for j := range recs {
					recs[j] = workspace(fmt.Sprintf("w%d-%d-%d-%s", w, i, j, strings.Repeat("x", 500)))
				}
				x, err := tn.Begin(ctx)
				if err == nil {
					if err = x.Upsert(ctx, "Workspace", recs); err == nil {
						err = x.Commit()
					} else {
						_ = x.Rollback()
					}
				}
				if err != nil && ctx.Err() == nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	upsert(t, tn, "Workspace", workspace("first"))
	first := starts()
	testkit.Eventually(t, 30*time.Second, 10*time.Millisecond, testkit.Until("the WAL has started over 3 times", func() bool {
		return starts() >= first+3
	}))
}
