package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReferenceReport is prisma-idb's reference server design measured on the
// same PostgreSQL with the same rows: every event of a batch applied one
// after another, each in a transaction of its own.
type ReferenceReport struct {
	// Concurrent runs as many clients as the syncplane run; Sequential
	// one client (a strictly sequential stream), over the users one
	// client of the concurrent run handles.
	Concurrent ReferencePass `json:"concurrent"`
	Sequential ReferencePass `json:"sequential"`
	Verified   bool          `json:"verified"`
	Verify     *Verification `json:"verification"`
}

// ReferencePass is one reference run, its rows read back and verified.
type ReferencePass struct {
	Clients int       `json:"clients"`
	Users   int       `json:"users"`
	Push    PushStats `json:"push"`
	// RoundTrips is the statements sent per event, BEGIN and COMMIT included.
	RoundTrips float64   `json:"roundTripsPerEvent"`
	Pull       PullStats `json:"readBack"`
}

// RunReference applies the plan's events the way prisma-idb's reference
// server does, into the ceiling's scratch schema (same tables and
// indexes): with clients clients, then with one client over the first
// ceil(users/clients) users. Each event is its own transaction of about
// six round trips: BEGIN; the idempotency lookup of the event id in the
// changelog; the lookup of the parent record for its scope (a Todo's
// Board, a Board's User); the record's upsert or delete; the changelog
// insert; COMMIT. Each pass's rows are read back by page and verified.
func RunReference(ctx context.Context, dsn string, p *Plan, batch, clients, limit int) (*ReferenceReport, error) {
	pool, release, err := scratchPool(ctx, dsn, clients)
	if err != nil {
		return nil, err
	}
	defer release()
	rep := &ReferenceReport{Verify: &Verification{}}
	seqUsers := (len(p.Users) + clients - 1) / clients
	for _, pass := range []struct {
		clients int
		plan    *Plan
		out     *ReferencePass
	}{
		{clients, p, &rep.Concurrent},
		{1, &Plan{Users: p.Users[:seqUsers]}, &rep.Sequential},
	} {
		for _, s := range referenceDDL() {
			if _, err := pool.Exec(ctx, s); err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
		}
		r, err := referencePass(ctx, pool, pass.plan, batch, pass.clients, limit, rep.Verify)
		if err != nil {
			return nil, err
		}
		*pass.out = *r
	}
	rep.Verified = rep.Verify.OK()
	return rep, nil
}

func referencePass(ctx context.Context, pool *pgxpool.Pool, p *Plan, batch, clients, limit int, v *Verification) (*ReferencePass, error) {
	acks := map[string]Acks{}
	for _, u := range p.Users {
		acks[u.ID] = Acks{}
	}
	var mu sync.Mutex
	statements := 0
	l := &latencies{}
	start := time.Now()
	err := forEachClient(clients, p.Users, func(u *UserPlan) error {
		n := 0
		for _, round := range u.Rounds {
			for _, b := range batches(round, batch) {
				bs := time.Now()
				for _, ev := range b {
					k, err := referenceEvent(ctx, pool, u.ID, ev, acks[u.ID])
					if err != nil {
						return fmt.Errorf("user %s, event %s: %w", u.ID, ev.ID, err)
					}
					n += k
				}
				l.add(time.Since(bs))
			}
		}
		mu.Lock()
		statements += n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	events := p.Events(-1)
	pass := &ReferencePass{Clients: max(1, min(clients, len(p.Users))), Users: len(p.Users),
		Push: pushStats(events, time.Since(start), l, 0)}
	if events > 0 {
		pass.RoundTrips = float64(statements) / float64(events)
	}

	if pass.Pull, err = readBackAll(ctx, pool, p, clients, limit, acks, v, true); err != nil {
		return nil, err
	}
	return pass, nil
}

// errScope is an event whose parent does not resolve to the writer's scope.
var errScope = errors.New("parent is missing or in another scope")

// referenceEvent applies one event in its own transaction and returns the
// statements it sent (BEGIN and COMMIT included).
func referenceEvent(ctx context.Context, pool *pgxpool.Pool, scope string, ev Event, acks Acks) (int, error) {
	m, ok := ceilingModels[ev.EntityType]
	if !ok {
		return 0, fmt.Errorf("unknown model %s", ev.EntityType)
	}
	n := 1
	tx, err := pool.Begin(ctx)
	if err != nil {
		return n, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op

	// Idempotency: an event already applied answers its changelog id.
	var applied string
	n++
	err = tx.QueryRow(ctx, "SELECT id FROM "+qt("_changelog")+" WHERE outbox_event_id = $1", ev.ID).Scan(&applied)
	switch {
	case err == nil:
		acks[ev.ID] = applied
		n++
		return n, tx.Commit(ctx)
	case !errors.Is(err, pgx.ErrNoRows):
		return n, fmt.Errorf("idempotency lookup: %w", err)
	}

	// Ownership: the parent record's scope must be the writer's.
	if m.parent != "" {
		parentID, _ := ev.Payload[m.parent].(string)
		var owner string
		q := "SELECT " + qi("id") + " FROM " + qt(m.ref) + ` WHERE "id" = $1` // a Board's User is the scope
		if pm := ceilingModels[m.ref]; pm.parent != "" {
			q = "SELECT " + qi(pm.parent) + " FROM " + qt(m.ref) + ` WHERE "id" = $1` // a Todo's Board's userId
		}
		n++
		if err := tx.QueryRow(ctx, q, parentID).Scan(&owner); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return n, fmt.Errorf("%s %s: %w", m.ref, parentID, errScope)
			}
			return n, fmt.Errorf("scope lookup: %w", err)
		}
		if owner != scope {
			return n, fmt.Errorf("%s %s belongs to %s: %w", m.ref, parentID, owner, errScope)
		}
	} else if id, _ := ev.Payload["id"].(string); id != scope {
		return n, fmt.Errorf("%s %s: %w", ev.EntityType, id, errScope)
	}

	id, _ := ev.Payload["id"].(string)
	n++
	if ev.Operation == "delete" {
		if _, err := tx.Exec(ctx, "DELETE FROM "+qt(ev.EntityType)+` WHERE "id" = $1`, id); err != nil {
			return n, fmt.Errorf("delete: %w", err)
		}
	} else {
		row, err := m.row(ev.Payload)
		if err != nil {
			return n, err
		}
		sets := make([]string, 0, len(m.cols))
		for _, c := range m.cols[1:] {
			sets = append(sets, qi(c.name)+" = EXCLUDED."+qi(c.name))
		}
		q, args := multiRow("INSERT INTO "+qt(ev.EntityType)+" ("+quoteAll(m.colNames())+") VALUES ", [][]any{row})
		if _, err := tx.Exec(ctx, q+` ON CONFLICT ("id") DO UPDATE SET `+strings.Join(sets, ", "), args...); err != nil {
			return n, fmt.Errorf("upsert: %w", err)
		}
	}

	cid := fmt.Sprintf("%020d", ceilingSeq.Add(1))
	kp, _ := json.Marshal([]string{id})
	n++
	if _, err := tx.Exec(ctx, "INSERT INTO "+qt("_changelog")+" ("+quoteAll(changelogCols)+") VALUES ($1, $2, $3, $4, $5, $6, $7)",
		cid, ev.EntityType, string(kp), ev.Operation, scope, ev.ID, time.Now().UTC()); err != nil {
		return n, fmt.Errorf("changelog insert: %w", err)
	}
	n++
	if err := tx.Commit(ctx); err != nil {
		return n, err
	}
	acks[ev.ID] = cid
	return n, nil
}
