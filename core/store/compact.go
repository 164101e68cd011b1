package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/syncplane/syncplane/core/schema"
)

// CompactReport says what one compaction of a tenant's changelog found
// and removed.
type CompactReport struct {
	Before     int64 // entries before
	Superseded int64 // entries removed: a newer entry of their record in their scope exists
	Tombstones int64 // delete entries removed: older than the tombstone retention
	After      int64 // entries after
	Deletes    int64 // of After, tombstones (delete entries) still kept
	Batches    int   // statements that removed superseded entries
	Took       time.Duration
}

// CompactOptions tune Compact.
type CompactOptions struct {
	// Batch is how many entries, in id order, one DELETE looks at
	// (default 1000): each batch is a short statement of its own, so that
	// pushes go on between them.
	Batch int
	// Pause is slept between batches (default none): the online
	// compaction of an upgraded tenant yields to the pushes this way.
	Pause time.Duration
}

// Compact removes from the changelog every entry that a newer entry of the
// same record in the same scope supersedes (push keeps the changelog
// compacted from system version 3 on; the history written before is
// compacted here), then, when the tenant has a tombstone retention, the
// delete entries past it (see DropTombstones). It reads the entries in id
// order, Batch at a time, each batch one DELETE in a transaction of its
// own, so it never holds a lock for long and pushes go on meanwhile.
//
// A reader converges whatever Compact removes when: an entry is removed
// only when a newer entry of its record in its scope is committed, which a
// reader behind the removed one reads (and reads the record's current
// state with); a reader past it has seen it (docs/architecture.md,
// "Compaction"). Compact may run while others run; it clears the tenant's
// pending compaction mark when it has gone through the whole changelog.
func (t *Tenant) Compact(ctx context.Context, opt CompactOptions) (CompactReport, error) {
	start := time.Now()
	batch := opt.Batch
	if batch <= 0 {
		batch = 1000
	}
	var rep CompactReport
	cl := t.prefix + `"_changelog"`
	if err := t.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+cl).Scan(&rep.Before); err != nil {
		return rep, classify(err)
	}
	// Rows a push holds (it deletes them too, as its record's older
	// entries) are skipped rather than waited for: the compaction never
	// waits for a push, so the two cannot deadlock.
	superseded := "DELETE FROM " + cl + " WHERE id IN (SELECT c.id FROM " + cl + " AS c WHERE c.id > ?%s AND EXISTS (SELECT 1 FROM " + cl + " AS n " +
		"WHERE n.scope_key = c.scope_key AND n.model = c.model AND n.key_path = c.key_path AND n.id > c.id)" + t.d.skipLocked() + ")"
	for lo := ""; ; {
		var hi string
		err := t.db.QueryRowContext(ctx, "SELECT id FROM "+cl+" WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?", lo, batch-1).Scan(&hi)
		end := errors.Is(err, sql.ErrNoRows)
		if err != nil && !end {
			return rep, classify(err)
		}
		q, args := fmt.Sprintf(superseded, ""), []any{lo}
		if !end {
			q, args = fmt.Sprintf(superseded, " AND c.id <= ?"), []any{lo, hi}
		}
		// Outside a transaction: a dead pooled connection is replaced and
		// the statement run again by the pool itself (retryConnector).
		res, err := t.w.db.ExecContext(ctx, q, args...)
		if err != nil {
			return rep, classify(err)
		}
		n, _ := res.RowsAffected()
		rep.Superseded += n
		rep.Batches++
		if end {
			break
		}
		lo = hi
		if opt.Pause > 0 {
			select {
			case <-ctx.Done():
				return rep, ctx.Err()
			case <-time.After(opt.Pause):
			}
		}
	}
	if keep := time.Duration(t.tombstones.Load()); keep > 0 {
		var err error
		if rep.Tombstones, err = inBatches(ctx, t.DropTombstones, time.Now().Add(-keep), 0); err != nil {
			return rep, err
		}
	}
	if _, err := t.w.db.ExecContext(ctx, "DELETE FROM "+t.prefix+`"_meta" WHERE key = 'compaction'`); err != nil {
		return rep, classify(err)
	}
	if err := t.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+cl).Scan(&rep.After); err != nil {
		return rep, classify(err)
	}
	if err := t.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+cl+" WHERE operation = 'delete'").Scan(&rep.Deletes); err != nil {
		return rep, classify(err)
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// CompactionPending reports whether the tenant's history from before
// system version 3 still waits for its compaction (see Compact).
func (t *Tenant) CompactionPending(ctx context.Context) (bool, error) {
	var n int
	err := t.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.prefix+`"_meta" WHERE key = 'compaction'`).Scan(&n)
	return n > 0, classify(err)
}

// ResumeCompaction starts, in the background, the compaction of a tenant
// upgraded from before system version 3 when it is pending and not
// running in this process already (batches of 1,000 entries, 20 ms apart),
// and calls done with its outcome. Store.Close stops it; a compaction that
// did not finish is resumed by the next process that opens the tenant.
func (t *Tenant) ResumeCompaction(done func(CompactReport, error)) {
	s := t.st
	ctx := s.bg
	pending, err := t.CompactionPending(ctx)
	if err != nil || !pending {
		if err != nil {
			done(CompactReport{}, err)
		}
		return
	}
	s.mu.Lock()
	if s.compacting[t.id] || ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.compacting[t.id] = true
	s.bgWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bgWG.Done()
		rep, err := t.Compact(ctx, CompactOptions{Pause: 20 * time.Millisecond})
		s.mu.Lock()
		delete(s.compacting, t.id)
		s.mu.Unlock()
		done(rep, err)
	}()
}

// SetTombstoneRetention sets how long a delete entry stays in the
// changelog (0 or less: until its record is written again, the default).
// Past it, the entry is dropped (see DropTombstones) and a reader whose
// cursor is behind a dropped entry of one of its scopes can no longer
// follow the changelog: Tenant.Horizons tells pull to answer it 410.
func (t *Tenant) SetTombstoneRetention(d time.Duration) { t.tombstones.Store(int64(d)) }

// TombstoneRetention is what SetTombstoneRetention set.
func (t *Tenant) TombstoneRetention() time.Duration { return time.Duration(t.tombstones.Load()) }

// DropTombstones deletes up to limit delete entries written before before
// (oldest first, through the partial index _changelog_tombstones) and, in
// the same transaction, moves each of their scopes' horizon in
// _tombstone_horizons to the newest id it dropped there. It returns how
// many entries it deleted.
func (t *Tenant) DropTombstones(ctx context.Context, before time.Time, limit int) (int64, error) {
	tx, err := t.w.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, classify(err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	cl := t.prefix + `"_changelog"`
	rows, err := tx.QueryContext(ctx, "SELECT id, scope_key FROM "+cl+" WHERE operation = 'delete' AND created_at < ? ORDER BY created_at LIMIT ?",
		t.d.encode(schema.DateTime, before.UTC()), limit)
	if err != nil {
		return 0, classify(err)
	}
	var ids []string
	horizon := map[string]string{}
	for rows.Next() {
		var id, sc string
		if err := rows.Scan(&id, &sc); err != nil {
			rows.Close()
			return 0, classify(err)
		}
		ids = append(ids, id)
		horizon[sc] = max(horizon[sc], id)
	}
	if err := rows.Err(); err != nil {
		return 0, classify(err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM "+cl+" WHERE id IN (?)", bun.In(ids))
	if err != nil {
		return 0, classify(err)
	}
	n, _ := res.RowsAffected()
	args := make([]any, 0, 2*len(horizon))
	for _, sc := range sortedKeys(horizon) {
		args = append(args, sc, horizon[sc])
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+t.prefix+`"_tombstone_horizons" AS h (scope_key, dropped_through) VALUES `+
		strings.TrimSuffix(strings.Repeat("(?, ?), ", len(horizon)), ", ")+
		" ON CONFLICT (scope_key) DO UPDATE SET dropped_through = CASE WHEN EXCLUDED.dropped_through > h.dropped_through"+
		" THEN EXCLUDED.dropped_through ELSE h.dropped_through END", args...)
	if err != nil {
		return 0, classify(err)
	}
	return n, classify(tx.Commit())
}

// Horizons maps those of scopes whose tombstones were dropped (see
// DropTombstones) to the newest id dropped there: a reader of such a
// scope whose position is below it has missed a delete. A tenant that
// never dropped a tombstone answers without a query.
func (t *Tenant) Horizons(ctx context.Context, scopes []string) (map[string]string, error) {
	if !t.DropsTombstones() {
		return nil, nil
	}
	out := map[string]string{}
	for chunk := range slices.Chunk(scopes, 500) {
		rows, err := t.db.QueryContext(ctx, "SELECT scope_key, dropped_through FROM "+t.prefix+`"_tombstone_horizons" WHERE scope_key IN (?)`,
			bun.In(chunk))
		if err != nil {
			return nil, classify(err)
		}
		for rows.Next() {
			var sc, id string
			if err := rows.Scan(&sc, &id); err != nil {
				rows.Close()
				return nil, classify(err)
			}
			out[sc] = id
		}
		if err := rows.Err(); err != nil {
			return nil, classify(err)
		}
	}
	return out, nil
}

// DropsTombstones reports whether the tenant drops tombstones past a
// retention, or had dropped some when it was opened.
func (t *Tenant) DropsTombstones() bool { return t.tombstones.Load() > 0 || t.hadHorizons.Load() }
