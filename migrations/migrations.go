// Package migrations holds the SQL migrations of syncplane's own platform
// tables, embedded in the binary and applied with bun/migrate by
// `syncplane migrate` and at the start of `syncplane serve`.
//
// Files are named <timestamp>_<name>.up.sql / .down.sql and must run on both
// PostgreSQL and SQLite. Tenant tables are not migrated here: core/store
// derives them from each tenant's Prisma schema.
package migrations

import (
	"embed"

	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// New returns the platform migrations.
func New() (*migrate.Migrations, error) {
	m := migrate.NewMigrations()
	if err := m.Discover(files); err != nil {
		return nil, err
	}
	return m, nil
}
