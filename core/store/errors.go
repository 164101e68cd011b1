package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/syncplane/syncplane/core/syncdata"
)

// errDBClosed is database/sql's error for a statement on a closed *sql.DB
// (a store closed at shutdown, or a tenant's SQLite file closed by a
// reload). database/sql does not export it; this is the very value, taken
// once from a database closed on purpose, so that it is recognized by
// identity rather than by its text.
var errDBClosed = func() error {
	db := sql.OpenDB(closedConnector{})
	_ = db.Close()
	return db.PingContext(context.Background())
}()

// closedConnector is a driver.Connector that is never asked to connect.
type closedConnector struct{}

func (closedConnector) Connect(context.Context) (driver.Conn, error) { return nil, driver.ErrBadConn }
func (closedConnector) Driver() driver.Driver                        { return nil }

// unavailableError is a driver error classified as unavailable.
type unavailableError struct {
	err       error
	transient bool
	missing   bool
}

func (e *unavailableError) Error() string {
	switch {
	case e.missing:
		return syncdata.ErrTenantMissing.Error() + ": " + e.err.Error()
	case e.transient:
		return syncdata.ErrTransient.Error() + ": " + e.err.Error()
	}
	return syncdata.ErrUnavailable.Error() + ": " + e.err.Error()
}

func (e *unavailableError) Unwrap() error { return e.err }

func (e *unavailableError) Is(target error) bool {
	return target == syncdata.ErrUnavailable || (target == syncdata.ErrTransient && e.transient) || (target == syncdata.ErrTenantMissing && e.missing)
}

// classify marks the errors that say the database cannot serve now as
// syncdata.ErrUnavailable (and syncdata.ErrTransient, syncdata.ErrTenantMissing), by their type and
// code, never their text, and returns others unchanged.
func classify(err error) error {
	if err == nil || errors.Is(err, syncdata.ErrUnavailable) {
		return err
	}
	transient, missing, ok := unavailable(err)
	if !ok {
		return err
	}
	return &unavailableError{err: err, transient: transient, missing: missing}
}

// unavailable decides whether err means the database cannot serve now.
//
//   - PostgreSQL's SQLSTATE (a *pgconn.PgError anywhere in the chain):
//     class 08 connection exception, 53 insufficient resources (too many
//     connections, disk full, out of memory), 58 system error (I/O),
//     57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
//     57014 query canceled (a statement timeout), 3D000 the database does
//     not exist; 40001 serialization failure and 40P01 deadlock are
//     transient (one more attempt normally succeeds). 42P01 undefined table
//     and 3F000 invalid schema name: the tenant's tables are missing.
//   - A connection that could not be made (*pgconn.ConnectError, whatever
//     the server answered, e.g. 55000 for a database that does not allow
//     connections), any net.Error (refused, unreachable, timeouts, DNS), and the socket
//     errors ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ETIMEDOUT,
//     EHOSTUNREACH, ENETUNREACH.
//   - A connection that broke under the statement: io.ErrUnexpectedEOF,
//     driver.ErrBadConn, sql.ErrConnDone, ECONNRESET, EPIPE (transient).
//   - database/sql's error for a closed *sql.DB and pgxpool's for a closed
//     pool (the store was closed).
//   - context.DeadlineExceeded: the database did not answer in time.
//     context.Canceled is not: the client went away.
//   - SQLite's result codes (*sqlite.Error, primary code): SQLITE_BUSY and
//     SQLITE_LOCKED (another writer held the file past busy_timeout),
//     SQLITE_IOERR, SQLITE_FULL (the disk), SQLITE_CANTOPEN, SQLITE_NOMEM,
//     SQLITE_PROTOCOL.
func unavailable(err error) (transient, missing, ok bool) {
	// A connection that could not be made, whatever the server said (the
	// database refuses connections, 55000, say): nothing ran.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return false, false, true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch code := pg.Code; {
		case code == "40001", code == "40P01":
			return true, false, true
		case code == "57P01", code == "57P02", strings.HasPrefix(code, "08"):
			return true, false, true
		case code == "42P01", code == "3F000":
			return false, true, true
		case code == "57P03", code == "57014", code == "3D000",
			strings.HasPrefix(code, "53"), strings.HasPrefix(code, "58"):
			return false, false, true
		}
		return false, false, false
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
			return false, false, true
		}
		return false, false, false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true, false, true
	}
	var ne net.Error
	if errors.Is(err, errDBClosed) || errors.Is(err, puddle.ErrClosedPool) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return false, false, true
	}
	return false, false, false
}
