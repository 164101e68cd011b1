package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the PostgreSQL NOTIFY channel of commits. A push
// transaction sends one notification per scope it wrote, with the payload
// "<tenant>|<scope>|<last changelog id>", delivered when it commits.
const NotifyChannel = "syncplane"

// Listener receives the commits Listen hears.
type Listener struct {
	// Notify is called, on Listen's goroutine, for every commit of a scope
	// by any process on the database. Required; it must not block.
	Notify func(tenant, scope, changelogID string)
	// Listening, when set, is called after every successful LISTEN (the
	// first and each reconnection). Commits made while the connection was
	// down are not heard.
	Listening func()
	// Lost, when set, is called with the error that ended a connection,
	// before Listen reconnects (with backoff, up to 5 s apart).
	Lost func(err error)
}

// Listen holds one dedicated PostgreSQL connection (not from the pool) on
// NotifyChannel and calls l.Notify for every notification, reconnecting with
// backoff, until ctx ends; then it returns nil. On SQLite there is nothing
// to listen to (one process owns the files): it returns an error.
func (s *Store) Listen(ctx context.Context, l Listener) error {
	if !s.Postgres() {
		return errors.New("listen: only PostgreSQL has cross-process notifications")
	}
	cfg, err := pgx.ParseConfig(s.dsn)
	if err != nil {
		return fmt.Errorf("postgres URL %s: %w", redact(s.dsn), err)
	}
	wait := 100 * time.Millisecond
	for {
		started := time.Now()
		err := s.listenOnce(ctx, cfg, l)
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

func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, l Listener) error {
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
