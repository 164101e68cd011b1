package store

import (
	"context"
	"fmt"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
)

// ScopeStats is what a scope holds in its changelog: one entry per record
// that is or was in it (compacted), live records being those whose latest
// entry is not a delete.
type ScopeStats struct {
	Live       int       `json:"liveRecords"`
	Tombstones int       `json:"tombstones"`
	Entries    int       `json:"entries"`
	Head       string    `json:"head,omitempty"`     // the scope's last changelog id
	LastWrite  time.Time `json:"lastWrite,omitzero"` // when its latest entry was written (its id's time)
}

// ScopeStats counts scope's changelog entries.
func (t *Tenant) ScopeStats(ctx context.Context, scope string) (ScopeStats, error) {
	var st ScopeStats
	rows, err := t.db.QueryContext(ctx, "SELECT operation, COUNT(*), MAX(id) FROM "+t.prefix+`"_changelog" WHERE scope_key = ? GROUP BY operation`, scope)
	if err != nil {
		return st, fmt.Errorf("tenant %s: scope stats: %w", t.id, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			op   string
			n    int
			last string
		)
		if err := rows.Scan(&op, &n, &last); err != nil {
			return st, fmt.Errorf("tenant %s: scope stats: %w", t.id, err)
		}
		st.Entries += n
		if op == "delete" {
			st.Tombstones += n
		} else {
			st.Live += n
		}
		st.Head = max(st.Head, last)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("tenant %s: scope stats: %w", t.id, classify(err))
	}
	st.LastWrite, _ = changelog.Time(st.Head) // ids are UUIDv7s allocated at the write
	return st, nil
}
