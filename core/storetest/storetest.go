// Package storetest gives tests the databases to run against: SQLite
// always, and PostgreSQL whenever SYNCPLANE_TEST_DATABASE_URL is set (CI's
// .ci/run always sets it). Each PostgreSQL store lives in a fresh database
// that is dropped when the test ends, so tests can run in parallel without
// seeing each other's tenants.
//
// With SYNCPLANE_TEST_REQUIRE_POSTGRES=1 a missing or unreachable PostgreSQL
// fails the test instead of leaving it out.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
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
