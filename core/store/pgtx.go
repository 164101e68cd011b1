package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
)

// pgTx is a write transaction on PostgreSQL, run over pgx's native
// interface so that statements whose answer nobody waits for travel with
// the next statement that needs one, as one pipelined batch (one round
// trip): BEGIN goes out with the transaction's first read, and the writes
// of Apply go out with COMMIT. A push batch is then three round trips in
// the common case: BEGIN + the idempotency ledger + the records and
// their parents, the scope locks, the writes + COMMIT (see "How a push
// flows" in docs/architecture.md).
//
// Statements are prepared once per connection and cached (the pool's
// default mode, see openPostgres), with binary parameters.
type pgTx struct {
	ctx  context.Context // Begin's: Commit and Rollback take none
	pool *pgxpool.Pool
	conn *pgxpool.Conn // nil once the transaction ended
	// later holds the statements not sent yet: BEGIN, queued reads
	// (readLater), the writes.
	later  []pgStmt
	begun  bool // BEGIN was sent: ending needs COMMIT or ROLLBACK
	failed bool // a statement failed: the transaction is aborted
	// deadAtBegin: the connection failed at BEGIN, so nothing of the
	// transaction ran.
	deadAtBegin bool
}

// pgStmt is one statement of a round trip. scan reads its rows, one call
// per row; without scan only its success is checked.
type pgStmt struct {
	what string // for errors
	sql  string
	args []any
	scan func(pgx.Rows) error
}

func beginPG(ctx context.Context, pool *pgxpool.Pool) (*pgTx, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, classify(err)
	}
	x := &pgTx{ctx: ctx, pool: pool, conn: conn}
	x.queue(pgStmt{what: "BEGIN", sql: "BEGIN"})
	return x, nil
}

// queue adds a statement to send with the next round trip.
func (x *pgTx) queue(st pgStmt) { x.later = append(x.later, st) }

// pending reports whether statements wait for the next round trip.
func (x *pgTx) pending() bool { return len(x.later) > 0 }

// read sends the queued statements and reads in one round trip.
//
// The first round trip goes once more on another connection when the
// pooled one turns out dead at BEGIN (after a server restart, a failover
// or pg_terminate_backend, every idle connection of the pool is closed on
// the server's side, and the client learns it only when it sends): nothing
// of the transaction ran, and the dead connection leaves the pool. So do
// the next ones, up to the pool's size, as database/sql does for its
// connections (retryConnector).
func (x *pgTx) read(ctx context.Context, reads ...pgStmt) error {
	if x.conn == nil {
		return errors.New("store: transaction already ended")
	}
	stmts := append(x.later, reads...)
	x.later = nil
	for attempt := 0; ; attempt++ {
		err := x.send(ctx, stmts)
		if err == nil || !x.deadAtBegin || !x.conn.Conn().IsClosed() || ctx.Err() != nil || attempt > maxConns {
			return err
		}
		x.conn.Release() // closed: the pool drops it
		if x.conn, err = x.pool.Acquire(ctx); err != nil {
			x.conn = nil
			return classify(err)
		}
		x.begun, x.failed, x.deadAtBegin = false, false, false
	}
}

// send runs stmts as one batch.
func (x *pgTx) send(ctx context.Context, stmts []pgStmt) (err error) {
	if x.failed {
		return errors.New("store: transaction aborted by an earlier error")
	}
	var b pgx.Batch
	for _, st := range stmts {
		b.Queue(st.sql, st.args...)
	}
	br := x.conn.SendBatch(ctx, &b)
	x.begun = true
	defer func() {
		if cerr := br.Close(); err == nil && cerr != nil {
			err = classify(cerr)
		}
		if err != nil {
			x.failed = true
		}
	}()
	for i, st := range stmts {
		if st.scan == nil {
			if _, err := br.Exec(); err != nil {
				x.deadAtBegin = i == 0 && st.what == "BEGIN"
				return fmt.Errorf("%s: %w", st.what, pgError(err))
			}
			continue
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("%s: %w", st.what, classify(err))
		}
		for rows.Next() {
			if err := st.scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", st.what, classify(err))
		}
	}
	return nil
}

// pgError keeps a constraint violation recognisable (postgres.constraint)
// and classifies the rest.
func pgError(err error) error {
	if c := (*postgres)(nil).constraint(err); c != err {
		return c
	}
	return classify(err)
}

// commit sends the queued writes with COMMIT and releases the connection.
func (x *pgTx) commit() error {
	if x.conn == nil {
		return errors.New("store: transaction already ended")
	}
	stmts := append(x.later, pgStmt{what: "COMMIT", sql: "COMMIT"})
	x.later = nil
	if err := x.send(x.ctx, stmts); err != nil {
		x.rollback()
		return err
	}
	x.conn.Release()
	x.conn = nil
	return nil
}

// rollback ends the transaction without writing and releases the
// connection; after commit it does nothing. A connection whose ROLLBACK
// fails is closed, not pooled.
func (x *pgTx) rollback() {
	if x.conn == nil {
		return
	}
	conn := x.conn
	x.conn, x.later = nil, nil
	if x.begun && !conn.Conn().IsClosed() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(x.ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
			_ = conn.Conn().Close(ctx)
		}
	}
	conn.Release() // pgxpool drops a closed connection or one left in a transaction
}

// pgLoad reads the records of each lookup, all in one round trip.
func (x *Tx) pgLoad(ctx context.Context, lookups []syncdata.Lookup) ([][]schema.Record, error) {
	out := make([][]schema.Record, len(lookups))
	reads := make([]pgStmt, 0, len(lookups))
	for i, l := range lookups {
		if len(l.Keys) == 0 {
			continue
		}
		ti, err := x.t.info(l.Model)
		if err != nil {
			return nil, err
		}
		p := &pgArgs{}
		where, err := pgKeyFilter(p, ti, "", l.Fields, l.Keys)
		if err != nil {
			return nil, err
		}
		sc := newRecordScanner(x.t.d, ti.table.Columns, 0)
		reads = append(reads, pgStmt{what: "load " + l.Model, sql: "SELECT " + ti.selects + " FROM " + ti.name + " WHERE " + where, args: p.args,
			scan: func(rows pgx.Rows) error {
				if err := rows.Scan(sc.dest...); err != nil {
					return fmt.Errorf("tenant %s: read %s: %w", x.t.id, l.Model, classify(err))
				}
				r, err := sc.read()
				if err != nil {
					return fmt.Errorf("tenant %s: read %s: %w", x.t.id, l.Model, err)
				}
				out[i] = append(out[i], r)
				return nil
			}})
	}
	if len(reads) == 0 {
		return out, nil
	}
	return out, x.pg.read(ctx, reads...)
}

// pgAppliedEventsLater is Tx.AppliedEventsLater on PostgreSQL: the
// lookup is queued for the transaction's next round trip.
func (x *Tx) pgAppliedEventsLater(ctx context.Context, subject string, ids []string) func() (map[string]string, error) {
	p := &pgArgs{}
	out := map[string]string{}
	x.pg.queue(pgStmt{what: "ledger", sql: pgAppliedEventsSQL(x.t, p, subject, ids), args: p.args, scan: pairInto(out)})
	return func() (map[string]string, error) {
		if x.pg.pending() {
			if err := x.pg.read(ctx); err != nil {
				return nil, err
			}
		}
		if x.pg.failed {
			return nil, errors.New("store: transaction aborted by an earlier error")
		}
		return out, nil
	}
}

// pgLastScopes is Tx.LastScopes on PostgreSQL.
func (x *Tx) pgLastScopes(ctx context.Context, model string, keyPaths []string) (map[string]string, error) {
	out := map[string]string{}
	err := x.pg.read(ctx, pgStmt{what: "last scopes", sql: "SELECT key_path, scope_key FROM " + x.t.prefix + `"_changelog" WHERE model = $1 AND key_path = ANY($2::text[]) ORDER BY id`,
		args: []any{model, keyPaths}, scan: func(r pgx.Rows) error {
			var kp, scope string
			if err := r.Scan(&kp, &scope); err != nil {
				return err
			}
			out[kp] = scope // ordered by id: the newest wins
			return nil
		}})
	return out, err
}

// pairInto scans a row of two text columns into out (first → second).
func pairInto(out map[string]string) func(pgx.Rows) error {
	return func(r pgx.Rows) error {
		var k, v string
		if err := r.Scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
		return nil
	}
}
