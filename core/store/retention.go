package store

import (
	"context"
	"time"

	"github.com/syncplane/syncplane/core/schema"
)

const (
	// pruneEvery is how often a tenant handle prunes its ledger, at most.
	pruneEvery = time.Minute
	// pruneBatch is how many ledger rows one DELETE removes, at most, and
	// pruneBatches how many DELETEs one pruning runs, at most.
	pruneBatch   = 1000
	pruneBatches = 10
	// pruneTimeout bounds one pruning.
	pruneTimeout = 5 * time.Second
)

// SetLedgerRetention sets how long the _applied_events ledger keeps an
// applied event (0 or less: for ever). A replay of an event still in the
// ledger is answered from it, whatever became of its changelog entry; a
// replay of an event pruned from it is applied again (an upsert of the
// same record, or a delete of it).
//
// Pruning is not on the path of each event: after a commit, at most once
// a minute per tenant handle (so per tenant and process) and in the
// background, bounded DELETEs
// of up to 1,000 rows each remove rows applied before the window, through
// the index _applied_events_at, until one removes fewer or ten have run:
// at most 10,000 rows a minute, 14.4 million a day per process. A tenant
// that applies more than that keeps a growing ledger. A failure is left
// to the next pruning.
func (t *Tenant) SetLedgerRetention(d time.Duration) { t.retention.Store(int64(d)) }

// maybePrune starts, if it is due and none runs, a pruning of the ledger
// (see SetLedgerRetention) and of the tombstones past their retention
// (see SetTombstoneRetention), in the background: the commit that
// triggers it does not wait for it.
func (t *Tenant) maybePrune() {
	keep, tombs := time.Duration(t.retention.Load()), time.Duration(t.tombstones.Load())
	if keep <= 0 && tombs <= 0 {
		return
	}
	now := time.Now()
	last := t.lastPrune.Load()
	if now.UnixNano()-last < int64(pruneEvery) || !t.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	s := t.st
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bg.Err() != nil { // the store is closing
		return
	}
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		t.prune(s.bg, now, keep, tombs)
	}()
}

// prune runs one pruning (see maybePrune); an error is left to the next.
func (t *Tenant) prune(ctx context.Context, now time.Time, keep, tombs time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, pruneTimeout)
	defer cancel()
	if keep > 0 {
		_, _ = inBatches(ctx, t.PruneLedger, now.Add(-keep), pruneBatches)
	}
	if tombs > 0 {
		_, _ = inBatches(ctx, t.DropTombstones, now.Add(-tombs), pruneBatches)
	}
}

// inBatches runs del (PruneLedger, DropTombstones) with pruneBatch rows at
// a time until one deletes fewer or most have run (0: no bound), and
// returns how many rows it deleted.
func inBatches(ctx context.Context, del func(context.Context, time.Time, int) (int64, error), before time.Time, most int) (int64, error) {
	var total int64
	for i := 0; most <= 0 || i < most; i++ {
		n, err := del(ctx, before, pruneBatch)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
	return total, nil
}

// PruneLedger deletes up to limit rows of the _applied_events ledger that
// were applied before before, and returns how many it deleted.
func (t *Tenant) PruneLedger(ctx context.Context, before time.Time, limit int) (int64, error) {
	tbl := t.prefix + `"_applied_events"`
	row := t.d.rowID()
	res, err := t.w.db.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE "+row+" IN (SELECT "+row+" FROM "+tbl+
		" WHERE applied_at < ? LIMIT ?)", t.d.encode(schema.DateTime, before.UTC()), limit)
	if err != nil {
		return 0, classify(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
