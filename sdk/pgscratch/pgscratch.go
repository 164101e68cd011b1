// Package pgscratch creates and drops scratch PostgreSQL databases: a
// fresh database for one test run or one benchmark, on a server the
// caller names. syncbench and the browser end-to-end test use it; it
// imports nothing of syncplane's.
package pgscratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// timeout bounds the creation and the drop of a database.
const timeout = 30 * time.Second

// Create creates the database prefix<random> on the PostgreSQL server of
// adminURL (a user that may create databases) and returns its URL and a
// function that drops it (FORCE: connections still open are ended). A
// failed drop is reported to onDropError, which may be nil.
func Create(ctx context.Context, adminURL, prefix string, onDropError func(error)) (string, func(), error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL URL: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if err := exec(ctx, adminURL, u, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create scratch database: %w", err)
	}
	drop := func() {
		if err := exec(context.Background(), adminURL, u, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && onDropError != nil {
			onDropError(fmt.Errorf("drop database %s: %w", name, err))
		}
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// exec runs one statement on its own connection to adminURL.
func exec(ctx context.Context, adminURL string, u *url.URL, stmt string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("PostgreSQL %s: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, stmt)
	return err
}
