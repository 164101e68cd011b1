package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/syncplane/syncplane/core/syncdata"
)

// cursorsDDL creates the table of stored union-pull positions: a cursor
// whose positions do not fit in it names a row here (see pull's cursor).
// Rows are content-addressed (the id is a hash of the positions) and never
// change, so any server process may write or read them.
func (t *Tenant) cursorsDDL() string {
	return "CREATE TABLE IF NOT EXISTS " + t.prefix + `"_pull_cursors" (id ` + t.d.sortedText() +
		" PRIMARY KEY, positions TEXT NOT NULL, created_at " + t.d.timestampType() + " NOT NULL)"
}

// SaveCursor stores positions under id; an id that is stored already keeps
// its row (ids are hashes of what they hold). The table is created with
// the first row.
func (t *Tenant) SaveCursor(ctx context.Context, id string, positions []byte) error {
	if _, err := t.w.db.ExecContext(ctx, t.cursorsDDL()); err != nil {
		return classify(err)
	}
	now := t.d.nowSQL()
	_, err := t.w.db.ExecContext(ctx, "INSERT INTO "+t.prefix+`"_pull_cursors" (id, positions, created_at) VALUES (?, ?, `+now+
		") ON CONFLICT (id) DO NOTHING", id, string(positions))
	return classify(err)
}

// LoadCursor returns the positions stored under id, or syncdata.ErrNoCursor.
func (t *Tenant) LoadCursor(ctx context.Context, id string) ([]byte, error) {
	q := "SELECT positions FROM " + t.prefix + `"_pull_cursors" WHERE id = ?`
	var s string
	err := t.db.QueryRowContext(ctx, q, id).Scan(&s)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		// A tenant that never stored a cursor has no table yet (or lost
		// it with its tables): create it and ask once more.
		if _, derr := t.w.db.ExecContext(ctx, t.cursorsDDL()); derr != nil {
			return nil, classify(err)
		}
		err = t.db.QueryRowContext(ctx, q, id).Scan(&s)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, syncdata.ErrNoCursor
	}
	if err != nil {
		return nil, classify(err)
	}
	return []byte(s), nil
}
