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
	"github.com/syncplane/syncplane/core/syncdata"
)

// Store reads one tenant's changelog and records.
type Store interface {
	// ReadPage hands fn, one at a time and in id order, at most limit
	// entries of the given scopes, each after its own cursor id ("" for the
	// beginning), each with its record's current state and scopes the
	// first time the page names that record (Repeat on later entries of the
	// same record); fn returns false to stop reading.
	ReadPage(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error
	// Horizons maps those of scopes whose expired tombstones were dropped
	// to the newest id dropped there (nil when the tenant never drops
	// any).
	Horizons(ctx context.Context, scopes []string) (map[string]string, error)
	// DropsTombstones reports whether the tenant drops expired tombstones
	// or did so: its cursors then carry their reader's start.
	DropsTombstones() bool
	// ScopesLike lists the existing scopes matching keyMatch patterns.
	ScopesLike(ctx context.Context, patterns []string) ([]string, error)
	CursorStore
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

// ErrGone: the cursor stands behind a tombstone that the tenant's
// tombstoneRetention dropped, so following it would miss a delete; the
// device must pull again from an empty cursor.
var ErrGone = errors.New("cursor expired")

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
	// PageBytes: a page stops growing before its response would exceed
	// this many bytes; it always holds at least one entry. 0 is
	// DefaultPageBytes.
	PageBytes int
}

// DefaultPageBytes is the page budget when Limits.PageBytes is 0 (4 MiB).
const DefaultPageBytes = 4 << 20

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
		if cur, err = s.cursor(ctx, *req.LastChangelogID); err != nil {
			return nil, err
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
		if cur, err = s.cursor(ctx, *resp.Cursor); err != nil {
			return nil, err
		}
	}
	return s.page(ctx, who, req, cur, scopes, limit)
}

// cursor decodes a request's cursor and reads its stored positions.
func (s *Service) cursor(ctx context.Context, text string) (cursor, error) {
	cur, err := decodeCursor(text)
	if err != nil {
		return cur, &RequestError{Msg: err.Error()}
	}
	return cur.load(ctx, s.store)
}

// nextCursor is the union cursor after reading entries of scopes from cur.
func (s *Service) nextCursor(ctx context.Context, cur cursor, scopes []string, read []changelog.Entry) (string, error) {
	return cur.encode(ctx, s.store, cur.advance(scopes, read))
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

// page reads one page of scopes after cur: at most limit entries, and no
// more than the page budget of response bytes (but at least one entry).
//
// The entries arrive one at a time (Store.ReadPage). A record is encoded
// once, at its first visible entry on the page, and the page's later
// entries of that record share the encoding, so the page holds each record
// it shows once; an entry is counted in the budget with its record (the
// response repeats it), and reading stops at the first entry that would
// pass the budget: the server keeps no more than the budget of records,
// and the cursor stands at the last entry the page took (or passed over).
func (s *Service) page(ctx context.Context, who *reader, req Request, cur cursor, scopes []string, limit int) (*Response, error) {
	after := make(map[string]string, len(scopes))
	for _, sc := range scopes {
		after[sc] = cur.after(sc)
	}
	var from map[string]string // where the page starts, when tombstones may have been dropped
	if s.store.DropsTombstones() {
		from = maps.Clone(after)
		if cur.empty() {
			// A reader starting from empty: its cursors say since when
			// (see cursor.since).
			start, err := changelog.Next("", time.Now())
			if err != nil {
				return nil, err
			}
			cur.pos = map[string]string{"": start}
		}
	}
	budget := s.limits.PageBytes
	if budget <= 0 {
		budget = DefaultPageBytes
	}
	// The envelope and the cursor are bounded (see maxCursorBytes).
	budget -= len(`{"cursor":,"logsWithRecords":[]}`) + maxCursorBytes
	resp := &Response{Cursor: req.LastChangelogID, LogsWithRecords: []LogWithRecord{}}
	var (
		read    []changelog.Entry            // what the cursor moves past
		encoded = map[string]encodedRecord{} // record → its JSON on this page
		size    int                          // bytes of the entries taken
		scratch []byte
	)
	// Entries of models the subject may not pull are passed over: the
	// cursor moves past them, the client never sees them. A page made only
	// of such entries would look like the end to the client, so reading
	// goes on until a page has something to show or the stream ends.
	for {
		n, stop := 0, false
		err := s.store.ReadPage(ctx, after, limit, func(e *syncdata.PageEntry) (bool, error) {
			n++
			ok, err := who.allow(s.authz, e.ScopeKey, e.Model)
			if err != nil {
				return false, err
			}
			key := e.Model + "\x00" + string(e.KeyPath)
			rec := encoded[key]
			switch {
			case e.Repeat:
			case ok: // encoded below, when the entry is taken
				rec = encodedRecord{entry: e}
			default: // not kept: a later entry of the record reads it again
				rec = encodedRecord{}
			}
			encoded[key] = rec
			if !ok {
				read = append(read, e.Entry)
				after[e.ScopeKey] = e.ID
				return true, nil
			}
			if rec.entry == nil && rec.json == nil {
				// Its record came with an entry that was passed over: read
				// again from here, where this entry is the record's first.
				stop = true
				return false, nil
			}
			if rec.json == nil {
				if rec.json, err = s.record(who, rec.entry); err != nil {
					return false, err
				}
				rec.entry = nil // the encoding is kept, not the record
				encoded[key] = rec
			}
			l := LogWithRecord{ID: e.ID, ChangelogID: e.ID, Model: e.Model, KeyPath: e.KeyPath, Operation: string(e.Operation),
				ScopeKey: e.ScopeKey, OutboxEventID: e.OutboxEventID, Record: rec.json}
			scratch = l.appendJSON(scratch[:0], false)
			sz := len(scratch) + len(l.Record) + 1 // and the comma before it
			if len(resp.LogsWithRecords) > 0 && size+sz > budget {
				stop = true
				return false, nil
			}
			size += sz
			resp.LogsWithRecords = append(resp.LogsWithRecords, l)
			read = append(read, e.Entry)
			after[e.ScopeKey] = e.ID
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		if len(resp.LogsWithRecords) > 0 || (!stop && n < limit) {
			break
		}
	}
	if err := s.checkHorizons(ctx, from, cur.since()); err != nil {
		return nil, err
	}
	if len(read) == 0 {
		return resp, nil
	}
	last := read[len(read)-1].ID
	if req.ScopeKey != nil && cur.since() == "" {
		resp.Cursor = &last
		return resp, nil
	}
	next, err := s.nextCursor(ctx, cur, scopes, read)
	if err != nil {
		return nil, err
	}
	resp.Cursor = &next
	return resp, nil
}

// checkHorizons fails with ErrGone when the position a page started from
// (from, by scope; "" for a scope read from its beginning, which needs no
// tombstone) is behind a tombstone dropped there that the reader may
// have needed: one written after the reader began (since; "" when its
// cursor does not say, and then every dropped tombstone counts). A reader
// that began from an empty cursor after a tombstone was written never had
// its record, so it reads on (a device's first sync is never answered 410
// halfway through); a reader that stands behind a tombstone written after
// it began may hold the deleted record and must start again from empty.
//
// It runs after the page is read: a tombstone is dropped in the same
// transaction that moves its scope's horizon, so a page that missed a
// dropped tombstone sees the horizon that says so.
func (s *Service) checkHorizons(ctx context.Context, from map[string]string, since string) error {
	var scopes []string
	for sc, id := range from {
		if id != "" {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return nil
	}
	slices.Sort(scopes) // the first scope behind its horizon is named, the same every time
	horizons, err := s.store.Horizons(ctx, scopes)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		if h, ok := horizons[sc]; ok && from[sc] < h && since < h {
			return fmt.Errorf("%w: the tenant dropped deletes of scope %q after this cursor (tombstoneRetention); pull again from an empty cursor", ErrGone, sc)
		}
	}
	return nil
}

// encodedRecord is a record of a page: the entry that brought it until an
// entry shows it, then its JSON ("null" when the reader may not see it).
type encodedRecord struct {
	entry *syncdata.PageEntry
	json  json.RawMessage
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

// record is the JSON of e's record as the reader may see it: null when
// the record is gone, its model is not synced, or none of the scopes it is
// in now is one where the reader may pull its model.
func (s *Service) record(who *reader, e *syncdata.PageEntry) (json.RawMessage, error) {
	null := json.RawMessage("null")
	if e.Record == nil {
		return null, nil
	}
	m := s.sch.Model(e.Model)
	if m == nil || !s.own.IsSynced(e.Model) {
		return null, nil
	}
	for _, sc := range e.Scopes {
		ok, err := who.allow(s.authz, sc, e.Model)
		if err != nil {
			return nil, err
		}
		if ok {
			out, err := m.AppendRecord(make([]byte, 0, 256), e.Record)
			if err != nil {
				return nil, fmt.Errorf("changelog entry %s: %w", e.ID, err)
			}
			return out, nil
		}
	}
	return null, nil
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
		dst = l.appendJSON(dst, true)
	}
	return append(dst, "]}"...)
}

// appendJSON appends the entry as JSON to dst; without the record (its
// value and the closing brace) when withRecord is false, which is how
// a page measures its entries.
func (l *LogWithRecord) appendJSON(dst []byte, withRecord bool) []byte {
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
	if !withRecord {
		return append(dst, '}')
	}
	dst = appendRaw(dst, l.Record)
	return append(dst, '}')
}

func appendRaw(dst []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}
