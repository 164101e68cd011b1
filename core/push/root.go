package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
)

// errMissingClaim: the token lacks a claim that the tenant's
// rootFromToken needs for a required field of the root record.
var errMissingClaim = errors.New("token lacks a claim for the root record")

// rootCacheSize and rootCacheTTL bound what a server process remembers of
// the roots it has seen: a root deleted meanwhile is created again at its
// subject's next request once the entry expires.
const (
	rootCacheSize = 10_000
	rootCacheTTL  = time.Minute
)

// roots creates subjects' root records from their verified tokens (the
// manifest's rootFromToken): an app whose auth library creates its users
// on its own server, and whose client never pushes its root record, can
// sync against syncplane unchanged.
type roots struct {
	fields map[string]string             // root field → claim
	seen   *lru.Cache[string, time.Time] // root key → when to look again

	flight singleflight.Group
}

// WithRootFromToken makes EnsureRoot create a subject's missing root
// record from the token claims named by fields (root field → claim). Call
// it before the service is used; an empty map turns it off.
func (s *Service) WithRootFromToken(fields map[string]string) *Service {
	if len(fields) == 0 {
		s.roots = nil
		return s
	}
	// A plain LRU with the expiry as its value: expirable.LRU would start a
	// goroutine per cache that never ends, one per tenant reload.
	seen, err := lru.New[string, time.Time](rootCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	s.roots = &roots{fields: fields, seen: seen}
	return s
}

// EnsureRoot creates the root record of a token's subject when it does not
// exist: its fields come from the claims as rootFromToken maps them, the
// others take their @default or null. It is written like an event the
// subject pushed (policy, validator, changelog entry in its scope), so a
// device pulls its own root record. An existing root is never changed:
// claims that change later are the app's to push. It does nothing when
// the tenant has no rootFromToken.
//
// A token without a claim that a required field needs (or with claims
// that do not make a valid record) creates nothing: the request goes on as
// if the tenant had no rootFromToken, so a client that pushes its own root
// still can. The same holds when the policy or the validator refuses the
// creation. Both are logged; the subject's pushes then meet MISSING_PARENT
// until its root exists.
func (s *Service) EnsureRoot(ctx context.Context, subject string, roles map[string]string, claims map[string]any) error {
	r := s.roots
	if r == nil {
		return nil
	}
	root := s.own.Root
	// The cache is keyed by the claims of the root's key, so that a root
	// seen before costs no more than this lookup.
	keyClaims := make([]any, len(root.PrimaryKey))
	for i, f := range root.PrimaryKey {
		keyClaims[i] = claims[r.fields[f]]
	}
	key := scope.KeyJSON(keyClaims)
	if until, ok := r.seen.Get(key); ok && s.now().Before(until) {
		return nil
	}
	payload, err := r.record(root, claims, s.now().UTC())
	if err == nil {
		var rec schema.Record
		if rec, err = root.Validate(payload); err == nil {
			return s.ensureRoot(ctx, subject, roles, key, root.Key(rec), payload)
		}
	}
	s.log.Debug("no root record from the token", "subject", subject, "model", root.Name, "err", err)
	return nil
}

// ensureRoot creates the root record with primary key pk (JSON payload)
// unless it exists, and remembers it under key.
func (s *Service) ensureRoot(ctx context.Context, subject string, roles map[string]string, key string, pk []any, payload json.RawMessage) error {
	r, root := s.roots, s.own.Root
	_, err, _ := r.flight.Do(key, func() (any, error) {
		found, err := s.store.Reads().Load(ctx, root.Name, root.PrimaryKey, [][]any{pk})
		if err != nil {
			return nil, err
		}
		if len(found) > 0 {
			r.seen.Add(key, s.now().Add(rootCacheTTL))
			return nil, nil
		}
		ev := Event{ID: "syncplane-root-" + uuid.Must(uuid.NewV7()).String(), EntityType: root.Name,
			Operation: string(changelog.Create), Payload: payload}
		res, err := s.Push(ctx, subject, roles, []Event{ev})
		if err != nil {
			return nil, err
		}
		if e := res[0].Error; e != nil {
			s.log.Warn("root record from the token refused", "subject", subject, "model", root.Name, "type", e.Type, "message", e.Message)
		}
		r.seen.Add(key, s.now().Add(rootCacheTTL))
		return nil, nil
	})
	return err
}

// record builds the root record's JSON from the claims.
func (r *roots) record(m *schema.Model, claims map[string]any, now time.Time) (json.RawMessage, error) {
	obj := make(map[string]any, len(m.Fields))
	for _, f := range m.Fields {
		if claim, ok := r.fields[f.Name]; ok {
			v, present := claims[claim]
			switch {
			case present && v != nil:
				obj[f.Name] = v
				continue
			case !f.Optional && f.Default == nil && !f.UpdatedAt:
				return nil, fmt.Errorf("%w: claim %q (rootFromToken maps it to %s.%s)", errMissingClaim, claim, m.Name, f.Name)
			}
		}
		obj[f.Name] = fieldDefault(f, now)
	}
	return json.Marshal(obj)
}

// fieldDefault is the value of an unmapped field: its @default, now for
// @updatedAt, else null (the root's validation refuses a null where the
// schema needs a value; manifests are checked for that when they load).
func fieldDefault(f *schema.Field, now time.Time) any {
	if f.UpdatedAt {
		return now.Format("2006-01-02T15:04:05.000Z07:00")
	}
	if f.Default == nil {
		if f.List {
			return []any{}
		}
		return nil
	}
	switch f.Default.Kind {
	case schema.DefaultValue:
		if t, ok := f.Default.Value.(time.Time); ok {
			return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
		return f.Default.Value
	case schema.DefaultNow:
		return now.Format("2006-01-02T15:04:05.000Z07:00")
	case schema.DefaultUUID, schema.DefaultCUID:
		return uuid.NewString()
	}
	return nil
}
