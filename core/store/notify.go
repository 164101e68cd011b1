package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncplane/syncplane/core/syncdata"
)

// NotifyChannel is the PostgreSQL NOTIFY channel of commits. A push
// transaction sends one notification per scope it wrote, with the payload
// "<tenant>|<scope>|<last changelog id>", delivered when it commits.
const NotifyChannel = "syncplane"

// ListenApplicationName is the application_name of Listen's connection
// (pg_stat_activity tells it apart from the pool's connections with it).
const ListenApplicationName = "syncplane-listen"

// Listener receives the commits Listen hears.
type Listener struct {
	// Notify is called, on Listen's goroutine, for every commit of a scope
	// by any process on the database. Required; it must not block.
	Notify func(tenant, scope, changelogID string)
	// Subscribed, when set, returns the scopes someone waits on now, by
	// tenant. After every successful LISTEN (the first and each
	// reconnection) Listen reads those scopes' heads and passes them to
	// CatchUp: commits made while the connection was down sent their
	// notifications to nobody. Subscribed must not block.
	Subscribed func() map[string][]string
	// CatchUp receives, on Listen's goroutine, the current heads (scope →
	// last changelog id) of a tenant's subscribed scopes that have commits.
	// Heads are read after LISTEN, so a commit is in them or notified
	// after them, or both. Required with Subscribed; it must not block.
	CatchUp func(tenant string, heads map[string]string)
	// CatchUpFailed, when set, is called when the heads of a tenant could
	// not be read while the connection stayed usable (say the tenant's
	// schema is gone); that tenant is not caught up. An error of the
	// connection itself ends it and Listen reconnects instead.
	CatchUpFailed func(tenant string, err error)
	// Listening, when set, is called after every successful LISTEN and
	// catch-up (the first and each reconnection).
	Listening func()
	// Lost, when set, is called with the error that ended a connection,
	// before Listen reconnects (with backoff, up to 5 s apart).
	Lost func(err error)
}

// Listen holds one dedicated PostgreSQL connection (not from the pool,
// application_name ListenApplicationName) on NotifyChannel and calls
// l.Notify for every notification, reconnecting with backoff, until ctx
// ends; then it returns nil. After every LISTEN it catches up the
// subscribed scopes (see Listener.Subscribed). On SQLite there is nothing
// to listen to (one process owns the files): it returns an error.
//
// Tenants placed on databases of their own (TenantAt) are heard on a
// connection to each of those databases, opened next to the main one.
func (s *Store) Listen(ctx context.Context, l Listener) error {
	main, ok := s.b.(*postgres)
	if !ok {
		return s.b.listen(ctx, l)
	}
	s.mu.Lock()
	lg := &listening{ctx: ctx, l: l}
	s.listening = lg
	for _, p := range s.placed {
		s.listenOn(p, lg)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.listening == lg {
			s.listening = nil
		}
		s.mu.Unlock()
	}()
	return main.listen(ctx, s.only(main, l))
}

func (p *postgres) listen(ctx context.Context, l Listener) error {
	if l.Subscribed != nil && l.CatchUp == nil {
		return errors.New("listen: Listener.Subscribed without CatchUp")
	}
	cfg, err := pgx.ParseConfig(p.dsn)
	if err != nil {
		return fmt.Errorf("postgres URL %s: %w", redact(p.dsn), err)
	}
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	wait := 100 * time.Millisecond
	for {
		started := time.Now()
		err := p.listenOnce(ctx, cfg, l)
		if ctx.Err() != nil {
			return nil
		}
		if l.Lost != nil {
			l.Lost(err)
		}
		if time.Since(started) > time.Minute {
			wait = 100 * time.Millisecond // it had been working: start over
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (*postgres) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, l Listener) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return classify(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the connection is dropped either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return classify(err)
	}
	if l.Subscribed != nil {
		// Notifications arriving meanwhile are buffered by pgx and
		// delivered by WaitForNotification below.
		if err := catchUp(ctx, conn, l); err != nil {
			return err
		}
	}
	if l.Listening != nil {
		l.Listening()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return classify(err)
		}
		tenant, rest, ok1 := strings.Cut(n.Payload, "|")
		i := strings.LastIndexByte(rest, '|')
		if !ok1 || i < 0 {
			continue // not ours
		}
		l.Notify(tenant, rest[:i], rest[i+1:])
	}
}

// catchUp reads the heads of the subscribed scopes on conn and hands them
// to l.CatchUp, tenant by tenant. It returns an error only when the
// connection is unusable.
func catchUp(ctx context.Context, conn *pgx.Conn, l Listener) error {
	for tenant, scopes := range l.Subscribed() {
		if len(scopes) == 0 {
			continue
		}
		heads, err := readHeads(ctx, conn, tenant, scopes)
		if err != nil {
			// A tenant whose tables are missing fails its own catch-up
			// only; the connection is fine.
			if ctx.Err() != nil || conn.IsClosed() || (errors.Is(err, syncdata.ErrUnavailable) && !errors.Is(err, syncdata.ErrTenantMissing)) {
				return err
			}
			if l.CatchUpFailed != nil {
				l.CatchUpFailed(tenant, err)
			}
			continue
		}
		if len(heads) > 0 {
			l.CatchUp(tenant, heads)
		}
	}
	return nil
}

// readHeads returns the last changelog id of each of scopes of tenant that
// has one.
func readHeads(ctx context.Context, conn *pgx.Conn, tenant string, scopes []string) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT scope_key, last_id FROM "+quote(schemaName(tenant))+`."_scope_heads" WHERE scope_key = ANY($1) AND last_id <> ''`, scopes)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	heads := map[string]string{}
	for rows.Next() {
		var sc, id string
		if err := rows.Scan(&sc, &id); err != nil {
			return nil, classify(err)
		}
		heads[sc] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tenant %s: scope heads: %w", tenant, classify(err))
	}
	return heads, nil
}
