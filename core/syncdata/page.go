package syncdata

import (
	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
)

// A PageEntry is a changelog entry with its record as it is now: JSON is
// the record in the wire format (the object pull sends, see
// schema.Model.AppendRecord), nil when the record is gone (or its model is
// no longer synced); Scopes are the scopes the record resolves to now.
// Record is the same record decoded, set only where a reader asks for it
// (store.Tenant.ReadPage, for tools and tests): pull copies JSON into its
// response as it is.
//
// Repeat reports that an earlier entry of the same read named the same
// record (the same model and key path): the record was read once, with
// that entry, and a repeated entry carries no JSON, Record or Scopes of
// its own.
type PageEntry struct {
	changelog.Entry
	JSON   []byte
	Record schema.Record
	Scopes []string
	Repeat bool
}
