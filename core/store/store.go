package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/migrations"
)

// Store is the platform database plus the way to reach each tenant's.
type Store struct {
	b        backend // chosen by Open: PostgreSQL or SQLite
	platform *bun.DB

	// mu guards the start of background work (the online compaction of
	// upgraded tenants, pruning), which runs under bg: Close cancels bg
	// before it waits for it.
	mu         sync.Mutex
	bg         context.Context
	stopBG     context.CancelFunc
	bgWG       sync.WaitGroup
	compacting map[string]bool // tenants whose compaction runs in this process

	// placed are the databases tenants were placed on (by URL), homes
	// where each tenant placed or not lives, listening the running
	// Listen (placement.go); under mu.
	placed    map[string]*postgres
	homes     map[string]backend
	listening *listening
}

// newStore returns a Store on platform with its background context.
func newStore(b backend, platform *bun.DB) *Store {
	s := &Store{b: b, platform: platform, compacting: map[string]bool{}}
	s.bg, s.stopBG = context.WithCancel(context.Background())
	return s
}

// Open connects to PostgreSQL when dsn is a postgres:// or postgresql://
// URL, and otherwise opens the embedded SQLite store under dataDir
// (created if missing). dsn "" means SQLite.
func Open(ctx context.Context, dsn, dataDir string) (*Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, b, err := openPostgres(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return newStore(b, db), nil
	case dsn == "":
		db, b, err := openSQLiteStore(dataDir)
		if err != nil {
			return nil, err
		}
		return newStore(b, db), nil
	default:
		return nil, fmt.Errorf("database URL %q: only postgres:// URLs are supported (leave it empty for the embedded SQLite store)", redact(dsn))
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

// Postgres reports whether the store runs on PostgreSQL, whose commits
// reach other server processes (see Listen); on SQLite one process owns
// the files.
func (s *Store) Postgres() bool {
	_, ok := s.b.(*postgres)
	return ok
}

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
func (s *Store) DBStats() sql.DBStats {
	pg, ok := s.b.(*postgres)
	if !ok {
		return s.platform.Stats()
	}
	// On PostgreSQL the connections are the pgx pool's (openPostgres).
	st := pg.pool.Stat()
	return sql.DBStats{MaxOpenConnections: int(st.MaxConns()), OpenConnections: int(st.TotalConns()),
		InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()),
		WaitCount: st.EmptyAcquireCount(), WaitDuration: st.EmptyAcquireWaitTime()}
}

// Close closes the platform database and every tenant database.
func (s *Store) Close() error {
	s.mu.Lock() // background work starts under mu, checking bg first
	s.stopBG()
	s.mu.Unlock()
	s.bgWG.Wait()
	errs := append(s.b.close(), s.platform.Close())
	errs = append(errs, s.closePlaced()...)
	if pg, ok := s.b.(*postgres); ok {
		pg.pool.Close()
		if pg.replicas != nil {
			pg.replicas.close()
		}
	}
	return errors.Join(errs...)
}
