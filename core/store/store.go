package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	msqlite "modernc.org/sqlite" // also the database/sql driver "sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/migrations"
)

// Store is the platform database plus the way to reach each tenant's.
type Store struct {
	dialect  dialect
	platform *bun.DB
	dataDir  string // SQLite only: where tenant files live
	dsn      string // PostgreSQL only: for the listening connection

	mu      sync.Mutex
	tenants map[string]*bun.DB // SQLite only: one file per tenant

	// Background work (the online compaction of upgraded tenants) runs
	// under bg, which Close cancels before it waits for it.
	bg         context.Context
	stopBG     context.CancelFunc
	bgWG       sync.WaitGroup
	compacting map[string]bool // tenants whose compaction runs in this process
}

// newStore returns a Store on platform with its background context.
func newStore(d dialect, platform *bun.DB) *Store {
	s := &Store{dialect: d, platform: platform, tenants: map[string]*bun.DB{}, compacting: map[string]bool{}}
	s.bg, s.stopBG = context.WithCancel(context.Background())
	return s
}

// Open connects to PostgreSQL when dsn is a postgres:// or postgresql://
// URL, and otherwise opens the embedded SQLite store under dataDir
// (created if missing). dsn "" means SQLite.
func Open(ctx context.Context, dsn, dataDir string) (*Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, fmt.Errorf("postgres URL %s: %w", redact(dsn), err)
		}
		// bun renders arguments into the SQL text, so every statement is
		// unique: the simple protocol runs it in one round trip, where
		// pgx's default would prepare (and cache) each one first.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		// Every statement of push and pull reads through an index (keys,
		// foreign keys, (scope_key, id)). A generic plan, which the prepared
		// statements of pg.go keep after a few executions, is made once: when
		// that happens while a new tenant's tables are nearly empty, a scan of
		// the whole table looks cheapest and stays in use as the table grows.
		// Seq scans are therefore priced out (they still run where no index
		// applies).
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		if _, set := cfg.RuntimeParams["enable_seqscan"]; !set {
			cfg.RuntimeParams["enable_seqscan"] = "off"
		}
		sqldb := sql.OpenDB(retryConnector{stdlib.GetConnector(*cfg)})
		sqldb.SetMaxOpenConns(32)
		sqldb.SetMaxIdleConns(32)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db := bun.NewDB(sqldb, pgdialect.New())
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("%w: postgres: %v", syncdata.ErrUnavailable, err)
		}
		s := newStore(postgres{}, db)
		s.dsn = dsn
		return s, nil
	case dsn == "":
		if err := os.MkdirAll(filepath.Join(dataDir, "tenants"), 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		db, err := openSQLite(filepath.Join(dataDir, "syncplane.db"))
		if err != nil {
			return nil, err
		}
		s := newStore(sqlite{}, db)
		s.dataDir = dataDir
		return s, nil
	default:
		return nil, fmt.Errorf("database URL %q: only postgres:// URLs are supported (leave it empty for the embedded SQLite store)", redact(dsn))
	}
}

// openSQLite opens one SQLite file with WAL, a busy timeout, foreign keys
// and immediate (write-locking) transactions.
func openSQLite(path string) (*bun.DB, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sqldb.SetMaxOpenConns(8)
	sqldb.SetMaxIdleConns(8)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	// Switching a new file to WAL needs a lock that SQLite does not wait
	// for (busy_timeout does not apply): when another store opens the same
	// file at that moment (two processes starting), the first connection
	// fails with SQLITE_BUSY. Try again for a while.
	deadline := time.Now().Add(10 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		err := db.Ping()
		if err == nil {
			return db, nil
		}
		var se *msqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			db.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		time.Sleep(wait)
	}
}

// redact hides a password in a URL for error messages.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	return dsn[:scheme+3] + "…" + dsn[at:]
}

// Postgres reports whether the store runs on PostgreSQL.
func (s *Store) Postgres() bool { return s.dialect.name() == "postgres" }

// Migrate applies the platform migrations under bun/migrate's lock. When
// several processes start at once, the ones that find the lock taken wait
// for it (up to a minute); when nothing is pending, no lock is taken.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations.New()
	if err != nil {
		return fmt.Errorf("platform migrations: %w", err)
	}
	m := migrate.NewMigrator(s.platform, ms)
	deadline := time.Now().Add(time.Minute)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err = s.migrateOnce(ctx, m)
		if err == nil || errors.Is(err, syncdata.ErrUnavailable) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if err != nil {
		return fmt.Errorf("apply platform migrations: %w (a crashed migration may have left a row in bun_migration_locks)", err)
	}
	return nil
}

func (s *Store) migrateOnce(ctx context.Context, m *migrate.Migrator) error {
	if err := m.Init(ctx); err != nil {
		return classify(err)
	}
	pending, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return classify(err)
	}
	if len(pending.Unapplied()) == 0 {
		return nil
	}
	if err := m.Lock(ctx); err != nil {
		return classify(err)
	}
	defer m.Unlock(ctx) //nolint:errcheck // a failed unlock shows up as a stale lock at the next start
	_, err = m.Migrate(ctx)
	return classify(err)
}

// Ready reports whether the platform database answers a ping and every
// platform migration is applied; the caller bounds it with ctx's deadline.
// A database that does not answer is an syncdata.ErrUnavailable.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.platform.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: ping: %v", syncdata.ErrUnavailable, err)
	}
	ms, err := migrations.New()
	if err != nil {
		return fmt.Errorf("platform migrations: %w", err)
	}
	status, err := migrate.NewMigrator(s.platform, ms).MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("platform migration status: %w", classify(err))
	}
	if n := len(status.Unapplied()); n > 0 {
		return fmt.Errorf("%d platform migrations not applied", n)
	}
	return nil
}

// DBStats are the connection pool statistics of the platform database
// (SQLite tenant files have pools of their own, not counted here).
func (s *Store) DBStats() sql.DBStats { return s.platform.Stats() }

// Close closes the platform database and every tenant database.
func (s *Store) Close() error {
	s.mu.Lock() // background work starts under mu, checking bg first
	s.stopBG()
	s.mu.Unlock()
	s.bgWG.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, db := range s.tenants {
		errs = append(errs, db.Close())
		delete(s.tenants, id)
	}
	errs = append(errs, s.platform.Close())
	return errors.Join(errs...)
}

// tenantDB returns the database that holds a tenant's tables.
func (s *Store) tenantDB(id string) (*bun.DB, error) {
	if s.Postgres() {
		return s.platform, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if db, ok := s.tenants[id]; ok {
		return db, nil
	}
	db, err := openSQLite(filepath.Join(s.dataDir, "tenants", id+".db"))
	if err != nil {
		return nil, err
	}
	s.tenants[id] = db
	return db, nil
}
