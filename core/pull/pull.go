package pull

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/jsonscan"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
)

// Store reads one tenant's changelog and records.
type Store interface {
	// ChangesWithRecords returns at most limit entries of the given scopes,
	// each after its own cursor id ("" for the beginning), merged in id
	// order, each with its record's current state and scopes.
	ChangesWithRecords(ctx context.Context, after map[string]string, limit int) ([]store.PageEntry, error)
	// ScopesLike lists the existing scopes matching keyMatch patterns.
	ScopesLike(ctx context.Context, patterns []string) ([]string, error)
}

// Authorizer decides whether subject, with its token's per-scope roles,
// may pull model in scope, and names the scopes a policy grants a subject.
type Authorizer interface {
	Allow(subject string, roles map[string]string, scope, model, act string) (bool, error)
	// Scopes lists the scopes the policy names for subject: literal ones
	// and keyMatch patterns. Pull checks every candidate with Allow.
	Scopes(subject string) (scopes, patterns []string)
}

// Waiter tells a long-polling pull when one of its scopes gets a commit
// (live.Tenant implements it).
type Waiter interface {
	// Watch returns a channel that becomes ready once one of scopes gets a
	// commit after the call, and the function that releases the watch.
	Watch(scopes []string) (ready <-chan struct{}, stop func())
}

// MaxWaitMs is the largest waitMs a pull accepts (30 s).
const MaxWaitMs = 30000

// ErrForbidden: the subject may not pull the requested scope.
var ErrForbidden = errors.New("forbidden")

// RequestError is a pull body that cannot be served.
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// Request is a pull body.
type Request struct {
	LastChangelogID *string `json:"lastChangelogId"`
	Limit           *int    `json:"limit"`
	ScopeKey        *string `json:"scopeKey"`
	// WaitMs: when the page would be empty, wait up to this long (0 to
	// MaxWaitMs) for a commit in one of the pulled scopes, then read once more.
	WaitMs *int `json:"waitMs"`
}

// Response is a pull page.
type Response struct {
	Cursor          *string         `json:"cursor"`
	LogsWithRecords []LogWithRecord `json:"logsWithRecords"`
}

// LogWithRecord is one changelog entry with its record's current state.
type LogWithRecord struct {
	ID            string          `json:"id"`
	ChangelogID   string          `json:"changelogId"`
	Model         string          `json:"model"`
	KeyPath       json.RawMessage `json:"keyPath"`
	Operation     string          `json:"operation"`
	ScopeKey      string          `json:"scopeKey"`
	OutboxEventID string          `json:"outboxEventId"`
	Record        json.RawMessage `json:"record"`
}

// Limits bound the page size.
type Limits struct {
	PageSize int // default limit
	PageMax  int // largest limit honored; larger ones are capped
}

// DecodeRequest reads a pull body strictly: unknown fields, a cursor that
// is not a changelog id, or a limit below 1 are a *RequestError. An empty
// body is the first pull.
func DecodeRequest(body []byte) (Request, error) {
	var req Request
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	// Decoded twice: first as a map, because encoding/json matches struct
	// field names case-insensitively ("LIMIT" would set Limit) and
	// dec.More reports no trailing data for a stray ']' or '}'.
	dec := json.NewDecoder(bytes.NewReader(body))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return req, &RequestError{Msg: "invalid pull body: " + err.Error()}
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return req, &RequestError{Msg: "invalid pull body: trailing data after the JSON value"}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		switch k {
		case "lastChangelogId", "limit", "scopeKey", "waitMs":
		default:
			return req, &RequestError{Msg: fmt.Sprintf("invalid pull body: unknown field %q", k)}
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, &RequestError{Msg: "invalid pull body: " + err.Error()}
	}
	if req.LastChangelogID != nil {
		if _, err := decodeCursor(*req.LastChangelogID); err != nil || *req.LastChangelogID == "" {
			return req, &RequestError{Msg: fmt.Sprintf("lastChangelogId %q is not a changelog id or a cursor syncplane gave out", *req.LastChangelogID)}
		}
	}
	if req.Limit != nil && *req.Limit < 1 {
		return req, &RequestError{Msg: fmt.Sprintf("limit must be at least 1, got %d", *req.Limit)}
	}
	if req.WaitMs != nil && (*req.WaitMs < 0 || *req.WaitMs > MaxWaitMs) {
		return req, &RequestError{Msg: fmt.Sprintf("waitMs must be between 0 and %d, got %d", MaxWaitMs, *req.WaitMs)}
	}
	if req.ScopeKey != nil && *req.ScopeKey == "" {
		return req, &RequestError{Msg: "scopeKey must not be empty"}
	}
	return req, nil
}

// Service serves pulls for one tenant.
type Service struct {
	sch    *schema.Schema
	own    *schema.Ownership
	store  Store
	authz  Authorizer
	limits Limits
	waiter Waiter // nil: waitMs returns at once
}

// New returns the pull service of a tenant.
func New(sch *schema.Schema, own *schema.Ownership, st Store, authz Authorizer, limits Limits) *Service {
	return &Service{sch: sch, own: own, store: st, authz: authz, limits: limits}
}

// WithWaiter makes pulls with waitMs wait for commits through w; it returns
// s. Call it before the service is used. Without a Waiter, waitMs is
// accepted and an empty page is returned at once.
func (s *Service) WithWaiter(w Waiter) *Service {
	s.waiter = w
	return s
}

// PullableScopes lists every scope subject (holding roles from its token)
// may pull now, sorted: the scopes a pull without scopeKey reads.
func (s *Service) PullableScopes(ctx context.Context, subject string, roles map[string]string) ([]string, error) {
	return s.scopes(ctx, &reader{id: subject, roles: roles, decisions: map[[2]string]bool{}})
}

// Pull returns the next page. With req.ScopeKey it reads that one scope
// (ErrForbidden when the subject may not pull it) and the cursor is the
// last entry's id. Without it, it reads the union of every scope the
// subject may pull (see scopes), merged in one stream behind one opaque
// cursor that holds a position per scope.
func (s *Service) Pull(ctx context.Context, subject string, roles map[string]string, req Request) (*Response, error) {
	limit := s.limits.PageSize
	if req.Limit != nil {
		limit = min(*req.Limit, s.limits.PageMax)
	}
	var cur cursor
	if req.LastChangelogID != nil {
		var err error
		if cur, err = decodeCursor(*req.LastChangelogID); err != nil {
			return nil, &RequestError{Msg: err.Error()}
		}
	}
	who := &reader{id: subject, roles: roles, decisions: map[[2]string]bool{}}
	var scopes []string
	if req.ScopeKey != nil {
		ok, err := s.pullable(who, *req.ScopeKey)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %q may not pull scope %q", ErrForbidden, subject, *req.ScopeKey)
		}
		scopes = []string{*req.ScopeKey}
	} else {
		var err error
		if scopes, err = s.scopes(ctx, who); err != nil {
			return nil, err
		}
	}
	if req.WaitMs == nil || *req.WaitMs == 0 || s.waiter == nil {
		return s.page(ctx, who, req, cur, scopes, limit)
	}
	// Watch before reading: a commit between the read and the wait still
	// ends the wait.
	ready, stop := s.waiter.Watch(scopes)
	defer stop()
	resp, err := s.page(ctx, who, req, cur, scopes, limit)
	if err != nil || len(resp.LogsWithRecords) > 0 {
		return resp, err
	}
	timer := time.NewTimer(time.Duration(*req.WaitMs) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-ready:
	case <-timer.C:
		return resp, nil
	case <-ctx.Done(): // the client left: the wait ends empty
		return resp, nil
	case <-waitStop(ctx): // the server is stopping
		return resp, nil
	}
	if resp.Cursor != nil && *resp.Cursor != "" {
		// Entries the subject may not see may have moved the cursor.
		req.LastChangelogID = resp.Cursor
		if cur, err = decodeCursor(*resp.Cursor); err != nil {
			return nil, err
		}
	}
	return s.page(ctx, who, req, cur, scopes, limit)
}

type waitStopKey struct{}

// WithWaitStop returns ctx carrying done: a long poll's wait ends (with the
// empty page it has) when done is closed, without canceling its reads, so
// that a stopping server answers its waiting pulls cleanly.
func WithWaitStop(ctx context.Context, done <-chan struct{}) context.Context {
	return context.WithValue(ctx, waitStopKey{}, done)
}

func waitStop(ctx context.Context) <-chan struct{} {
	done, _ := ctx.Value(waitStopKey{}).(<-chan struct{})
	return done // nil: never
}

// page reads one page of scopes after cur.
func (s *Service) page(ctx context.Context, who *reader, req Request, cur cursor, scopes []string, limit int) (*Response, error) {
	after := make(map[string]string, len(scopes))
	for _, sc := range scopes {
		after[sc] = cur.after(sc)
	}
	// Entries of models the subject may not pull are passed over: the
	// cursor moves past them, the client never sees them. A page made only
	// of such entries would look like the end to the client, so reading
	// goes on until a page has something to show or the stream ends.
	read := make([]changelog.Entry, 0, limit)
	visible := make([]store.PageEntry, 0, limit)
	for {
		entries, err := s.store.ChangesWithRecords(ctx, after, limit)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			read = append(read, e.Entry)
			after[e.ScopeKey] = e.ID
			ok, err := who.allow(s.authz, e.ScopeKey, e.Model)
			if err != nil {
				return nil, err
			}
			if ok {
				visible = append(visible, e)
			}
		}
		if len(visible) > 0 || len(entries) < limit {
			break
		}
	}
	resp := &Response{Cursor: req.LastChangelogID, LogsWithRecords: make([]LogWithRecord, 0, len(visible))}
	if len(read) == 0 {
		return resp, nil
	}
	records, err := s.materialize(who, visible)
	if err != nil {
		return nil, err
	}
	for i, e := range visible {
		rec := records[i]
		if rec == nil {
			rec = json.RawMessage("null")
		}
		resp.LogsWithRecords = append(resp.LogsWithRecords, LogWithRecord{ID: e.ID, ChangelogID: e.ID, Model: e.Model, KeyPath: e.KeyPath,
			Operation: string(e.Operation), ScopeKey: e.ScopeKey, OutboxEventID: e.OutboxEventID, Record: rec})
	}
	last := read[len(read)-1].ID
	if req.ScopeKey != nil {
		resp.Cursor = &last
		return resp, nil
	}
	next := cur.advance(scopes, read)
	resp.Cursor = &next
	return resp, nil
}

// reader is the subject of one pull with the decisions made for it.
type reader struct {
	id        string
	roles     map[string]string
	decisions map[[2]string]bool // (scope, model) → may pull
}

func (r *reader) allow(authz Authorizer, scope, model string) (bool, error) {
	key := [2]string{scope, model}
	if ok, known := r.decisions[key]; known {
		return ok, nil
	}
	ok, err := authz.Allow(r.id, r.roles, scope, model, "pull")
	if err != nil {
		return false, fmt.Errorf("policy: %w", err)
	}
	r.decisions[key] = ok
	return ok, nil
}

// pullable reports whether the subject may pull some synced model in scope.
func (s *Service) pullable(who *reader, scope string) (bool, error) {
	for _, m := range s.own.Synced() {
		ok, err := who.allow(s.authz, scope, m.Name)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// scopes lists every scope the subject may pull: its own id, the scopes its
// token grants roles in, the scopes the policy names for it, and the
// existing scopes matching the policy's patterns for it, each checked with
// the policy.
func (s *Service) scopes(ctx context.Context, who *reader) ([]string, error) {
	named, patterns := s.authz.Scopes(who.id)
	candidates := append([]string{who.id}, named...)
	for sc := range who.roles {
		candidates = append(candidates, sc)
	}
	matched, err := s.store.ScopesLike(ctx, patterns)
	if err != nil {
		return nil, err
	}
	candidates = append(candidates, matched...)
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	var out []string
	for _, sc := range candidates {
		ok, err := s.pullable(who, sc)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, sc)
		}
	}
	return out, nil
}

// materialize returns, per entry, its record's current JSON, or nil when
// the record is gone or no longer in a scope the reader may pull. The
// records come with the page (store.Tenant.ChangesWithRecords).
func (s *Service) materialize(who *reader, entries []store.PageEntry) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(entries))
	buf := make([]byte, 0, 256*len(entries)) // the records share one buffer
	for i, e := range entries {
		if e.Record == nil {
			continue
		}
		m := s.sch.Model(e.Model)
		if m == nil || !s.own.IsSynced(e.Model) {
			continue
		}
		visible := false
		for _, sc := range e.Scopes {
			ok, err := who.allow(s.authz, sc, e.Model)
			if err != nil {
				return nil, err
			}
			if ok {
				visible = true
				break
			}
		}
		if !visible {
			continue
		}
		start := len(buf)
		var err error
		if buf, err = m.AppendRecord(buf, e.Record); err != nil {
			return nil, fmt.Errorf("changelog entry %s: %w", e.ID, err)
		}
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out, nil
}

// AppendJSON appends the response as JSON to dst: the same document
// encoding/json makes of it, without re-validating the records, which
// are JSON made by the schema's encoder.
func (r *Response) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"cursor":`...)
	if r.Cursor == nil {
		dst = append(dst, "null"...)
	} else {
		dst = jsonscan.AppendString(dst, *r.Cursor)
	}
	dst = append(dst, `,"logsWithRecords":[`...)
	for i, l := range r.LogsWithRecords {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = jsonscan.AppendString(dst, l.ID)
		dst = append(dst, `,"changelogId":`...)
		dst = jsonscan.AppendString(dst, l.ChangelogID)
		dst = append(dst, `,"model":`...)
		dst = jsonscan.AppendString(dst, l.Model)
		dst = append(dst, `,"keyPath":`...)
		dst = appendRaw(dst, l.KeyPath)
		dst = append(dst, `,"operation":`...)
		dst = jsonscan.AppendString(dst, l.Operation)
		dst = append(dst, `,"scopeKey":`...)
		dst = jsonscan.AppendString(dst, l.ScopeKey)
		dst = append(dst, `,"outboxEventId":`...)
		dst = jsonscan.AppendString(dst, l.OutboxEventID)
		dst = append(dst, `,"record":`...)
		dst = appendRaw(dst, l.Record)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

func appendRaw(dst []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}
