package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// writer is where a tenant's writes go: its write transactions (Tenant.Begin
// on SQLite, DropTombstones, the migration) and the statements that write
// outside one (compaction, pruning, stored pull cursors).
//
// On PostgreSQL it is the tenant's pool, and write transactions run side by
// side, each holding the row locks it takes; push's transactions
// (Tenant.Begin) take their connection from the pgx pool itself (pgTx).
// On SQLite a file has one
// writer at a time: db is a pool of one connection of the tenant's file
// (sqliteFile), and push's write transactions take turns on it in the
// order they asked (turn), so that a waiting transaction starts the moment
// the one before it ends, instead of sleeping in SQLite's busy handler and
// polling for the file's lock (docs/architecture.md, "Writing to
// SQLite"). The other writers, one background task or a rare request
// each, wait for the connection in the pool.
type writer struct {
	db *bun.DB
	// turn, when not nil, holds a token while a write transaction of
	// Tenant.Begin runs, until it ends or its context does (or while the
	// checkpoint that lets SQLite start a long WAL over runs,
	// sqliteFile.finish): a buffered channel of capacity 1, whose blocked
	// senders are served in the order they came. maxWait bounds the wait
	// for a turn.
	turn    chan struct{}
	maxWait time.Duration
}

// begin starts a write transaction after its turn, if writes take turns;
// end must be called once the transaction has ended (committed or rolled
// back). The turn is also given up when ctx ends, whichever comes first,
// and only once: a transaction abandoned without Commit or Rollback (a
// handler that panicked) would otherwise hold it for good, and every later
// write of the file would wait maxWait and fail. database/sql rolls such a
// transaction back when ctx ends; until that rollback has put the
// connection back in db, a pool of one, the next transaction's BeginTx
// waits for it there.
func (w *writer) begin(ctx context.Context) (tx bun.Tx, end func(), err error) {
	end = func() {}
	if w.turn != nil {
		if err := w.wait(ctx); err != nil {
			return bun.Tx{}, nil, classify(err)
		}
		end = w.doneWhen(ctx)
	}
	tx, err = w.db.BeginTx(ctx, nil)
	if err != nil {
		end()
		return bun.Tx{}, nil, classify(err)
	}
	return tx, end, nil
}

// doneWhen returns a function that gives up the turn that wait took, and
// has it run when ctx ends if it has not run before; the turn is given up
// once.
func (w *writer) doneWhen(ctx context.Context) func() {
	var once sync.Once
	done := func() { once.Do(w.done) }
	stop := context.AfterFunc(ctx, done)
	return func() { stop(); done() }
}

// done gives up the turn that wait took.
func (w *writer) done() { <-w.turn }

// wait takes the turn to write: at once when no transaction holds it, else
// after the transactions that asked before, within ctx and maxWait (past
// which the database is taken as unavailable, as SQLite's busy_timeout does
// for a lock another process holds).
func (w *writer) wait(ctx context.Context) error {
	select {
	case w.turn <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(w.maxWait)
	defer timer.Stop()
	select {
	case w.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return &unavailableError{err: fmt.Errorf("waited %v for the write transactions before this one", w.maxWait)}
	}
}
