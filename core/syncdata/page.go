package syncdata

import (
	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
)

// A PageEntry is a changelog entry with its record as it is now: Record is
// nil when the record is gone (or its model is no longer synced), Scopes
// are the scopes the record resolves to now.
//
// Repeat reports that an earlier entry of the same read named the same
// record (the same model and key path): the record was read once, with
// that entry, and a repeated entry carries no Record or Scopes of its own.
type PageEntry struct {
	changelog.Entry
	Record schema.Record
	Scopes []string
	Repeat bool
}
