// Package storetest gives tests the databases to run against: SQLite
// always, and PostgreSQL whenever SYNCPLANE_TEST_DATABASE_URL is set (CI's
// .ci/run always sets it). Each PostgreSQL store lives in a fresh database
// that is dropped when the test ends, so tests can run in parallel without
// seeing each other's tenants.
//
// With SYNCPLANE_TEST_REQUIRE_POSTGRES=1 a missing or unreachable PostgreSQL
// fails the test instead of leaving it out.
//
// Tests on Citus run only when SYNCPLANE_TEST_CITUS_URL names a database on
// a Citus coordinator (see CitusURL); nothing sets it in CI.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/syncplane/syncplane/core/store"
)

// DB is one database kind to test against.
type DB struct {
	Name string // "sqlite" or "postgres": use it in subtest names (db=...)
	// AdminURL is the configured PostgreSQL URL; empty for SQLite.
	AdminURL string
}

// Databases lists the databases available to tests.
func Databases(t testing.TB) []DB {
	t.Helper()
	dbs := []DB{{Name: "sqlite"}}
	if pg, ok := Postgres(t); ok {
		dbs = append(dbs, pg)
	}
	return dbs
}

// ForEach runs f in a parallel subtest db=<name> for each of Databases.
func ForEach(t *testing.T, f func(t *testing.T, db DB)) {
	t.Helper()
	for _, db := range Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			t.Parallel()
			f(t, db)
		})
	}
}

// Postgres returns the PostgreSQL database, or false when none is
// configured (and none is required).
func Postgres(t testing.TB) (DB, bool) {
	t.Helper()
	u := os.Getenv("SYNCPLANE_TEST_DATABASE_URL")
	if u == "" {
		if os.Getenv("SYNCPLANE_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("SYNCPLANE_TEST_REQUIRE_POSTGRES=1 but SYNCPLANE_TEST_DATABASE_URL is not set")
		}
		return DB{}, false
	}
	return DB{Name: "postgres", AdminURL: u}, true
}

// URL creates a fresh, empty database for the test and returns its URL
// ("" for SQLite, whose store lives in a temporary directory instead).
func (db DB) URL(t testing.TB) string {
	t.Helper()
	if db.AdminURL == "" {
		return ""
	}
	admin, err := sql.Open("pgx", db.AdminURL)
	if err != nil {
		t.Fatalf("postgres %s: %v", db.AdminURL, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "sp_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres at SYNCPLANE_TEST_DATABASE_URL is not usable: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", db.AdminURL)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(db.AdminURL)
	if err != nil {
		t.Fatalf("SYNCPLANE_TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open opens and migrates a store on a fresh database of this kind; it is
// closed when the test ends.
func (db DB) Open(t testing.TB) *store.Store {
	t.Helper()
	return db.OpenAt(t, db.URL(t), t.TempDir())
}

// OpenAt opens and migrates a store on the database at url (from URL) or,
// for SQLite, in dataDir. Two stores opened at the same place share data,
// like two server processes.
func (db DB) OpenAt(t testing.TB, url, dataDir string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, dataDir)
	if err != nil {
		t.Fatalf("open %s store: %v", db.Name, err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s store: %v", db.Name, err)
	}
	return st
}

// CitusURL returns SYNCPLANE_TEST_CITUS_URL, a database on the coordinator
// of a Citus cluster (12.0 or later, workers added, the citus extension in
// that database on every node), with citus.enable_schema_based_sharding
// set to schemaSharding for the sessions opened with it; the test is
// skipped when the variable is not set, whatever
// SYNCPLANE_TEST_REQUIRE_POSTGRES says (CI has no Citus).
//
// Unlike URL it is not a fresh database (one exists on a Citus cluster only
// when every node has it): the platform tables are shared with other runs,
// and a test gives its tenants ids of their own (NewTenantID) and drops
// them when it ends (DropCitusTenant).
func CitusURL(t testing.TB, schemaSharding bool) string {
	t.Helper()
	raw := os.Getenv("SYNCPLANE_TEST_CITUS_URL")
	if raw == "" {
		t.Skip("SYNCPLANE_TEST_CITUS_URL is not set (a database on a Citus coordinator)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("SYNCPLANE_TEST_CITUS_URL: %v", err)
	}
	q := u.Query()
	q.Set("citus.enable_schema_based_sharding", map[bool]string{true: "on", false: "off"}[schemaSharding])
	u.RawQuery = q.Encode()
	return u.String()
}

// NewTenantID returns a tenant id that no other test run uses: prefix and
// random hex digits.
func NewTenantID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// DropCitusTenant drops, when the test ends, the schema of tenant id and
// its row in the platform table of the database at url (from CitusURL).
func DropCitusTenant(t testing.TB, url, id string) {
	t.Helper()
	t.Cleanup(func() {
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Errorf("drop tenant %s: %v", id, err)
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		schema := "t_" + strings.ReplaceAll(id, "-", "_") // ids are [a-z0-9-]
		if _, err := db.ExecContext(ctx, `DROP SCHEMA IF EXISTS "`+schema+`" CASCADE`); err != nil {
			t.Errorf("drop tenant %s: %v", id, err)
		}
		if _, err := db.ExecContext(ctx, "DELETE FROM syncplane_tenants WHERE id = $1", id); err != nil {
			t.Errorf("drop tenant %s: %v", id, err)
		}
	})
}
