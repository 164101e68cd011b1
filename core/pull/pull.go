package pull

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/jsonscan"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/tracing"
)

// Store reads one tenant's changelog and records.
type Store interface {
	// ReadPageJSON hands fn, one at a time and in id order, at most limit
	// entries of the given scopes, each after its own cursor id ("" for the
	// beginning), each with its record's current state (as JSON in the
	// wire format) and scopes the first time the page names that record
	// (Repeat on later entries of the same record); fn returns false to
	// stop reading. The entry is only valid during the call.
	ReadPageJSON(ctx context.Context, after map[string]string, limit int, fn func(*syncdata.PageEntry) (bool, error)) error
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

// Response is a pull page. A page that Service.PullJSON returns holds its
// entries already encoded, in a pooled buffer (see AppendJSON, Len and
// Release), and no LogsWithRecords; LogsWithRecords is what Service.Pull
// returns, what a client (or a test) decodes a page into, and what a
// Response built by hand holds.
type Response struct {
	Cursor          *string         `json:"cursor"`
	LogsWithRecords []LogWithRecord `json:"logsWithRecords"`

	entries *[]byte // the encoded entries, comma-separated; nil: LogsWithRecords
	n       int     // how many
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
	if fast, ok := decodeRequestFast(body); ok {
		return fast, checkRequest(fast)
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
	return req, checkRequest(req)
}

// decodeRequestFast decodes what clients send, a JSON object of the known
// fields (keys without escapes, strings or null for the ids, integers of
// at most 15 digits or null for the numbers), as the full decoder would,
// without encoding/json; ok is false for anything else, which the full
// decoder reads (and refuses in its own words).
func decodeRequestFast(body []byte) (req Request, ok bool) {
	obj, ok := jsonscan.ObjectBytes(body)
	if !ok {
		return req, false
	}
	jsonscan.ForEachMember(obj, func(key, val []byte) {
		if !ok {
			return
		}
		switch string(key[1 : len(key)-1]) { // a repeated key: the last wins, as in encoding/json
		case "lastChangelogId":
			req.LastChangelogID, ok = stringMember(val)
		case "scopeKey":
			req.ScopeKey, ok = stringMember(val)
		case "limit":
			req.Limit, ok = intMember(val)
		case "waitMs":
			req.WaitMs, ok = intMember(val)
		default:
			ok = false
		}
	})
	return req, ok
}

func stringMember(v []byte) (*string, bool) {
	switch v[0] {
	case 'n':
		return nil, true
	case '"':
		s := jsonscan.Unquote(v)
		return &s, true
	}
	return nil, false
}

func intMember(v []byte) (*int, bool) {
	if v[0] == 'n' {
		return nil, true
	}
	n, ok := jsonscan.SmallInt(v)
	i := int(n)
	return &i, ok
}

// checkRequest refuses a decoded body that cannot be served.
func checkRequest(req Request) error {
	if req.LastChangelogID != nil {
		if _, err := decodeCursor(*req.LastChangelogID); err != nil || *req.LastChangelogID == "" {
			return &RequestError{Msg: fmt.Sprintf("lastChangelogId %q is not a changelog id or a cursor syncplane gave out", *req.LastChangelogID)}
		}
	}
	if req.Limit != nil && *req.Limit < 1 {
		return &RequestError{Msg: fmt.Sprintf("limit must be at least 1, got %d", *req.Limit)}
	}
	if req.WaitMs != nil && (*req.WaitMs < 0 || *req.WaitMs > MaxWaitMs) {
		return &RequestError{Msg: fmt.Sprintf("waitMs must be between 0 and %d, got %d", MaxWaitMs, *req.WaitMs)}
	}
	if req.ScopeKey != nil && *req.ScopeKey == "" {
		return &RequestError{Msg: "scopeKey must not be empty"}
	}
	return nil
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

// Pull is PullJSON with the page's entries decoded into LogsWithRecords,
// for callers in the process (tools, tests); the HTTP API sends the bytes
// PullJSON made.
func (s *Service) Pull(ctx context.Context, subject string, roles map[string]string, req Request) (*Response, error) {
	resp, err := s.PullJSON(ctx, subject, roles, req)
	if err != nil || resp.entries == nil {
		return resp, err
	}
	defer resp.Release()
	var page Response
	if err := json.Unmarshal(resp.AppendJSON(nil), &page); err != nil {
		return nil, fmt.Errorf("pull: decode a page: %w", err)
	}
	return &page, nil
}

// PullJSON returns the next page, its entries encoded (Response.AppendJSON
// writes it; Release hands its buffer back). With req.ScopeKey it reads
// that one scope (ErrForbidden when the subject may not pull it) and the
// cursor is the last entry's id. Without it, it reads the union of every
// scope the subject may pull (see scopes), merged in one stream behind one
// opaque cursor that holds a position per scope.
func (s *Service) PullJSON(ctx context.Context, subject string, roles map[string]string, req Request) (*Response, error) {
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
	if err != nil || resp.Len() > 0 {
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

// page is readPage in the span pull.page (with tracing; see package
// tracing): the scopes read, the limit and the entries the page took.
func (s *Service) page(ctx context.Context, who *reader, req Request, cur cursor, scopes []string, limit int) (resp *Response, err error) {
	ctx, span := tracing.Start(ctx, "pull.page")
	resp, err = s.readPage(ctx, who, req, cur, scopes, limit)
	if span.IsRecording() {
		tracing.Int(span, "syncplane.scopes", len(scopes))
		tracing.Int(span, "syncplane.limit", limit)
		if resp != nil {
			tracing.Int(span, "syncplane.entries", resp.Len())
		}
	}
	tracing.End(span, err)
	return resp, err
}

// readPage reads one page of scopes after cur: at most limit entries, and no
// more than the page budget of response bytes (but at least one entry).
//
// The entries arrive one at a time (Store.ReadPageJSON), each record as
// JSON already in the wire format, and each entry taken is appended at
// once, encoded, to the page's buffer: nothing of an entry is kept but its
// bytes. A record is encoded once, at its first entry on the page, and
// the page's later entries of that record copy those bytes (the response
// repeats it); an entry is counted in the budget with its record, and
// reading stops at the first entry that would pass the budget: the server
// keeps no more than the budget, and the cursor stands at the last entry
// the page took (or passed over).
func (s *Service) readPage(ctx context.Context, who *reader, req Request, cur cursor, scopes []string, limit int) (*Response, error) {
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
	buf := getBuffer()
	var (
		body = *buf
		read = make([]changelog.Entry, 0, min(limit, 64)) // what the cursor moves past: scope and id
		recs pageRecords
		size int // bytes of the entries taken, each counted with a comma
	)
	// Entries of models the subject may not pull are passed over: the
	// cursor moves past them, the client never sees them. A page made only
	// of such entries would look like the end to the client, so reading
	// goes on until a page has something to show or the stream ends.
	for {
		n, stop := 0, false
		err := s.store.ReadPageJSON(ctx, after, limit, func(e *syncdata.PageEntry) (bool, error) {
			n++
			ok, err := who.allow(s.authz, e.ScopeKey, e.Model)
			if err != nil {
				return false, err
			}
			var rec *pageRecord
			if e.Repeat {
				rec = recs.find(e.Model, e.KeyPath)
			} else {
				rec = recs.add(e.Model, e.KeyPath)
			}
			if !ok {
				// Not shown: a later entry of its record on this page
				// must read it again (see below).
				if !e.Repeat {
					rec.passed = true
				}
				read = append(read, changelog.Entry{ID: e.ID, ScopeKey: e.ScopeKey})
				after[e.ScopeKey] = e.ID
				return true, nil
			}
			if rec == nil || rec.passed {
				// Its record came with an entry that was passed over: read
				// again from here, where this entry is the record's first.
				stop = true
				return false, nil
			}
			mark := len(body)
			if resp.n > 0 {
				body = append(body, ',')
			}
			body = appendEntry(body, e.ID, e.Model, e.KeyPath, string(e.Operation), e.ScopeKey, e.OutboxEventID)
			if e.Repeat {
				body = append(body, body[rec.start:rec.end]...)
			} else {
				start := len(body)
				if body, err = s.appendRecord(body, who, e); err != nil {
					return false, err
				}
				rec.start, rec.end = start, len(body)
			}
			body = append(body, '}')
			sz := len(body) - mark
			if resp.n == 0 {
				sz++ // every entry counts its comma
			}
			if resp.n > 0 && size+sz > budget {
				body = body[:mark]
				stop = true
				return false, nil
			}
			size += sz
			resp.n++
			read = append(read, changelog.Entry{ID: e.ID, ScopeKey: e.ScopeKey})
			after[e.ScopeKey] = e.ID
			return true, nil
		})
		if err != nil {
			*buf = body
			putBuffer(buf)
			return nil, err
		}
		if resp.n > 0 || (!stop && n < limit) {
			break
		}
		recs.reset()
	}
	*buf = body
	if resp.n > 0 {
		resp.entries = buf
	} else {
		putBuffer(buf)
	}
	if err := s.checkHorizons(ctx, from, cur.since()); err != nil {
		resp.Release()
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
		resp.Release()
		return nil, err
	}
	resp.Cursor = &next
	return resp, nil
}

// pageRecords are the records of a page's entries, in the order of their
// first entries, so that a later entry of a record finds its encoding.
// Most pages name each record once: the index by key is made only when an
// entry repeats a record.
type pageRecords struct {
	list    []pageRecord
	index   map[string]int // model and key path → list
	indexed int            // list[:indexed] is in index
}

// pageRecord is a record on a page: where its JSON is in the page's
// buffer, or passed when its first entry was passed over.
type pageRecord struct {
	model      string
	keyPath    []byte
	start, end int
	passed     bool
}

func (p *pageRecords) add(model string, keyPath []byte) *pageRecord {
	p.list = append(p.list, pageRecord{model: model, keyPath: keyPath})
	return &p.list[len(p.list)-1]
}

// find returns the record of model and key path, nil if none.
func (p *pageRecords) find(model string, keyPath []byte) *pageRecord {
	if p.index == nil {
		p.index = make(map[string]int, len(p.list))
	}
	for ; p.indexed < len(p.list); p.indexed++ {
		r := &p.list[p.indexed]
		p.index[r.model+"\x00"+string(r.keyPath)] = p.indexed // a later first entry of the same record wins
	}
	if i, ok := p.index[model+"\x00"+string(keyPath)]; ok {
		return &p.list[i]
	}
	return nil
}

func (p *pageRecords) reset() {
	p.list, p.index, p.indexed = p.list[:0], nil, 0
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

// appendRecord appends the JSON of e's record as the reader may see it:
// null when the record is gone, its model is not synced, or none of the
// scopes it is in now is one where the reader may pull its model.
func (s *Service) appendRecord(dst []byte, who *reader, e *syncdata.PageEntry) ([]byte, error) {
	if e.JSON == nil || !s.own.IsSynced(e.Model) || s.sch.Model(e.Model) == nil {
		return append(dst, "null"...), nil
	}
	for _, sc := range e.Scopes {
		ok, err := who.allow(s.authz, sc, e.Model)
		if err != nil {
			return nil, err
		}
		if ok {
			return append(dst, e.JSON...), nil
		}
	}
	return append(dst, "null"...), nil
}

// AppendJSON appends the response as JSON to dst: the same document
// encoding/json makes of it, without re-validating the records, which
// are JSON written as the schema's encoder writes them (see
// store.Tenant.ReadPageJSON).
func (r *Response) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"cursor":`...)
	if r.Cursor == nil {
		dst = append(dst, "null"...)
	} else {
		dst = jsonscan.AppendString(dst, *r.Cursor)
	}
	dst = append(dst, `,"logsWithRecords":[`...)
	if r.entries != nil {
		dst = append(dst, *r.entries...)
		return append(dst, "]}"...)
	}
	for i, l := range r.LogsWithRecords {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendEntry(dst, l.ID, l.Model, l.KeyPath, l.Operation, l.ScopeKey, l.OutboxEventID)
		dst = appendRaw(dst, l.Record)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// Len is the number of entries of the page.
func (r *Response) Len() int {
	if r.entries != nil {
		return r.n
	}
	return len(r.LogsWithRecords)
}

// Release hands the page's buffer back for another page; the response
// holds no entries after it. Call it once the response is written (a
// response that is never released is simply collected).
func (r *Response) Release() {
	if r.entries != nil {
		putBuffer(r.entries)
		r.entries, r.n = nil, 0
	}
}

// appendEntry appends an entry as JSON to dst, up to its record's value:
// the record and the closing brace follow. id is also its changelogId.
func appendEntry(dst []byte, id, model string, keyPath []byte, op, scope, outbox string) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonscan.AppendString(dst, id)
	dst = append(dst, `,"changelogId":`...)
	dst = jsonscan.AppendString(dst, id)
	dst = append(dst, `,"model":`...)
	dst = jsonscan.AppendString(dst, model)
	dst = append(dst, `,"keyPath":`...)
	dst = appendRaw(dst, keyPath)
	dst = append(dst, `,"operation":`...)
	dst = jsonscan.AppendString(dst, op)
	dst = append(dst, `,"scopeKey":`...)
	dst = jsonscan.AppendString(dst, scope)
	dst = append(dst, `,"outboxEventId":`...)
	dst = jsonscan.AppendString(dst, outbox)
	return append(dst, `,"record":`...)
}

func appendRaw(dst []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

// pageBuffers hold the encoded entries of pages. A buffer that grew past
// maxPooledBuffer (a page of large records) is left to the collector, so
// that one large page does not stay in memory.
var pageBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

const maxPooledBuffer = 1 << 20

func getBuffer() *[]byte {
	b := pageBuffers.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		pageBuffers.Put(b)
	}
}
