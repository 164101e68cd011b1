package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// Tenants may live on databases of their own (a manifest's database:
// env:NAME): the tenant's tables, changelog, scope heads and
// notifications are on that database, the platform tables on the main
// one. Tenants placed on the same URL share its pool. See README,
// "Tenants on their own databases".

// backendFor returns the backend of a tenant placed at dsn ("" for the
// main database), opening the database on first use.
func (s *Store) backendFor(ctx context.Context, dsn string) (backend, error) {
	if dsn == "" {
		return s.b, nil
	}
	main, ok := s.b.(*postgres)
	if !ok {
		return nil, errors.New("a tenant's own database (database: in the manifest) needs PostgreSQL as the main database (SYNCPLANE_DATABASE_URL)")
	}
	if dsn == main.dsn {
		return s.b, nil
	}
	s.mu.Lock()
	p := s.placed[dsn]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	_, opened, err := openPostgres(ctx, dsn)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.placed[dsn]; p != nil { // another tenant opened it meanwhile
		opened.platform.Close()
		opened.pool.Close()
		return p, nil
	}
	if s.bg.Err() != nil {
		opened.platform.Close()
		opened.pool.Close()
		return nil, errors.New("store closed")
	}
	if s.placed == nil {
		s.placed = map[string]*postgres{}
	}
	s.placed[dsn] = opened
	if l := s.listening; l != nil {
		s.listenOn(opened, l)
	}
	return opened, nil
}

// home records the backend a tenant's data lives on, for Listen.
func (s *Store) home(id string, b backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.homes == nil {
		s.homes = map[string]backend{}
	}
	s.homes[id] = b
}

// listening is the Listener of a running Listen, so that a database a
// tenant is placed on later gets its listening connection too.
type listening struct {
	ctx context.Context
	l   Listener
}

// listenOn starts p's listening connection for the tenants that live on
// it; s.mu is held.
func (s *Store) listenOn(p *postgres, lg *listening) {
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		// It ends with Listen's context or with the store (Close waits
		// for it).
		ctx, cancel := context.WithCancel(lg.ctx)
		defer cancel()
		defer context.AfterFunc(s.bg, cancel)()
		_ = p.listen(ctx, s.only(p, lg.l))
	}()
}

// only is l for the listening connection of backend b: its catch-up reads
// the heads of the tenants that live on b.
func (s *Store) only(b backend, l Listener) Listener {
	if l.Subscribed == nil {
		return l
	}
	all := l.Subscribed
	l.Subscribed = func() map[string][]string {
		out := all()
		s.mu.Lock()
		defer s.mu.Unlock()
		maps.DeleteFunc(out, func(id string, _ []string) bool {
			home, ok := s.homes[id]
			if !ok {
				home = s.b
			}
			return home != b
		})
		return out
	}
	return l
}

// closePlaced closes the databases tenants were placed on.
func (s *Store) closePlaced() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for dsn, p := range s.placed {
		if err := p.platform.Close(); err != nil {
			errs = append(errs, fmt.Errorf("database %s: %w", redact(dsn), err))
		}
		p.pool.Close()
	}
	s.placed = nil
	return errs
}

// DatabaseStats says where a tenant's data lives and that database's
// connections in this process (shared with every tenant on it).
type DatabaseStats struct {
	Database string `json:"database"` // "main", or the tenant's own database's URL without password
	Open     int    `json:"openConnections"`
	InUse    int    `json:"inUseConnections"`
}

// Database reports the tenant's database and its connections.
func (t *Tenant) Database() DatabaseStats {
	if p, ok := t.d.(*postgres); ok {
		ps := p.pool.Stat()
		st := DatabaseStats{Database: "main", Open: int(ps.TotalConns()), InUse: int(ps.AcquiredConns())}
		if main, _ := t.st.b.(*postgres); p != main {
			st.Database = redact(p.dsn)
		}
		return st
	}
	s := t.db.Stats() // the tenant's SQLite file: its readers
	return DatabaseStats{Database: "main", Open: s.OpenConnections, InUse: s.InUse}
}
