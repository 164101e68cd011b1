package store

import (
	"context"
	"database/sql/driver"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// retryConnector makes database/sql try another connection when a pooled
// PostgreSQL connection turns out to be dead on its first use: after a
// server restart, a failover or pg_terminate_backend, every idle
// connection of the pool is closed on the server's side, and the client
// learns it only when it sends the next statement. pgx reports that as the
// statement's error (the server's 57P01, or an unexpected EOF), and
// database/sql would hand it to the request; reported as driver.ErrBadConn
// instead, database/sql discards the connection and runs the statement on
// another one (or a new one).
//
// That is done only where running the statement again is safe: for BEGIN,
// and for a statement outside a transaction (a read, or one of the
// idempotent upserts this package sends outside transactions), when the
// error is a connection-level one (syncdata.ErrTransient), the connection is closed
// and the caller's context is still live. A statement inside a
// transaction is not retried here: the transaction is lost with its
// connection, and the caller retries it whole (push does so once, see
// syncdata.ErrTransient).
type retryConnector struct{ driver.Connector }

func (c retryConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if sc, ok := conn.(*stdlib.Conn); ok {
		return &retryConn{Conn: sc}, nil
	}
	return conn, nil
}

// retryConn is a pgx connection whose lost-connection errors outside a
// transaction become driver.ErrBadConn (see retryConnector). Every other
// method is pgx's.
type retryConn struct{ *stdlib.Conn }

func (c *retryConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil && c.lost(ctx, err) {
		return nil, driver.ErrBadConn
	}
	return tx, err
}

// simple makes a statement without an execution mode of its own run in
// the simple protocol (one round trip, no statement cached): bun renders
// arguments into the SQL text, so nearly every statement is unique. The
// pool's default mode, which caches prepared statements, is for the
// statements of this package that pass their mode (prepared) or run
// natively (pgTx).
func simple(args []driver.NamedValue) []driver.NamedValue {
	if len(args) > 0 {
		if _, ok := args[0].Value.(pgx.QueryExecMode); ok {
			return args
		}
	}
	return append([]driver.NamedValue{{Ordinal: 1, Value: pgx.QueryExecModeSimpleProtocol}}, renumber(args)...)
}

func renumber(args []driver.NamedValue) []driver.NamedValue {
	out := make([]driver.NamedValue, len(args))
	for i, a := range args {
		a.Ordinal = i + 2
		out[i] = a
	}
	return out
}

func (c *retryConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	idle := c.idle()
	rows, err := c.Conn.QueryContext(ctx, query, simple(args))
	if err != nil && idle && c.lost(ctx, err) {
		return nil, driver.ErrBadConn
	}
	return rows, err
}

func (c *retryConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	idle := c.idle()
	res, err := c.Conn.ExecContext(ctx, query, simple(args))
	if err != nil && idle && c.lost(ctx, err) {
		return nil, driver.ErrBadConn
	}
	return res, err
}

// idle reports whether the connection is outside a transaction.
func (c *retryConn) idle() bool {
	pc := c.Conn.Conn().PgConn()
	return !pc.IsClosed() && pc.TxStatus() == 'I'
}

// lost reports whether err broke the connection under a live request.
func (c *retryConn) lost(ctx context.Context, err error) bool {
	if ctx.Err() != nil || !c.Conn.Conn().IsClosed() {
		return false
	}
	transient, _, ok := unavailable(err)
	return ok && transient
}
