package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/syncplane/syncplane/core/admin"
	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// The OpenAPI document (openapi.json, served at /openapi.json) is kept
// true here: TestOpenAPIDocument validates it and checks that every
// route the API router and the admin API register is in it (and nothing
// else is); TestOpenAPIConformance runs a realistic session through a
// middleware that validates every request and every response against it
// with kin-openapi's openapi3filter (JSON Schema 2020-12 for a 3.1
// document), failing on any mismatch, on any status the document does
// not list and on any operation the session never called.

// invalidHeader marks a request the test sends on purpose against the
// document (a malformed body, a missing token): the document must reject
// it, and the server's answer must still match the document.
const invalidHeader = "X-Test-Violates-Openapi"

var registerDecoders sync.Once

// loadOpenAPI loads and validates the served document and builds a router.
func loadOpenAPI(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	registerDecoders.Do(func() {
		// The export's JSON lines: the document describes the body as the
		// array of its lines, each an ExportLine.
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", ndjsonDecoder)
		// An event stream is validated as text; its pokes one by one
		// (TestOpenAPIConformance, events).
		openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return doc, router
}

// ndjsonDecoder decodes newline-delimited JSON into the array of its
// lines; a body cut short (not ending in a complete line) is an error.
func ndjsonDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	lines := []any{}
	if len(data) == 0 {
		return lines, nil
	}
	if data[len(data)-1] != '\n' {
		return nil, errors.New("x-ndjson body does not end in a complete line")
	}
	for i, l := range bytes.Split(data[:len(data)-1], []byte("\n")) {
		var v any
		if err := json.Unmarshal(l, &v); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		lines = append(lines, v)
	}
	return lines, nil
}

// bearerPresent is the security check: the document says which scheme a
// route takes; the server judges the token. A request without one
// violates the document.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); !ok || strings.TrimSpace(tok) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// conformance validates every request and response that passes through
// its handlers against the document, and records which operations
// answered which statuses.
type conformance struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router

	mu   sync.Mutex
	seen map[string]map[int]int // operationId → status → count
}

func newConformance(t *testing.T) *conformance {
	doc, router := loadOpenAPI(t)
	return &conformance{t: t, doc: doc, router: router, seen: map[string]map[int]int{}}
}

// recorder passes a response through while keeping a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	header http.Header // as sent with the status
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.header = r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (c *conformance) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqBody, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		what := r.Method + " " + r.URL.Path
		violates := r.Header.Get(invalidHeader) != ""

		vreq := r.Clone(context.Background())
		vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
		route, params, err := c.router.FindRoute(vreq)
		if err != nil {
			c.t.Errorf("%s: not in the OpenAPI document: %v", what, err)
			next.ServeHTTP(w, r)
			return
		}
		opts := &openapi3filter.Options{AuthenticationFunc: bearerPresent, IncludeResponseStatus: true, MultiError: true}
		in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
		reqErr := openapi3filter.ValidateRequest(context.Background(), in)
		switch {
		case reqErr != nil && !violates:
			c.t.Errorf("%s: the request does not match the document: %v\nbody: %.500s", what, reqErr, reqBody)
		case reqErr == nil && violates:
			c.t.Errorf("%s: the document accepts a request the server refuses as invalid\nbody: %.500s", what, reqBody)
		}

		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.WriteHeader(http.StatusOK)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.status, Header: rec.header, Options: opts}
		out.SetBodyBytes(rec.body.Bytes())
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			c.t.Errorf("%s: response %d does not match the document: %v\nheaders: %v\nbody: %.1000s", what, rec.status, err, rec.header, rec.body.Bytes())
		}
		c.mu.Lock()
		op := route.Operation.OperationID
		if c.seen[op] == nil {
			c.seen[op] = map[int]int{}
		}
		c.seen[op][rec.status]++
		c.mu.Unlock()
	})
}

// statuses are the statuses op answered.
func (c *conformance) statuses(op string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for s := range c.seen[op] {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

// schema validates v (decoded JSON) against a component schema.
func (c *conformance) schema(name string, v any) error {
	s := c.doc.Components.Schemas[name]
	if s == nil {
		return fmt.Errorf("no schema %q", name)
	}
	return s.Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// call sends a request; violates marks one the document must refuse.
func call(t *testing.T, method, url, tok, contentType string, body []byte, violates bool, hdr map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	must(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if violates {
		req.Header.Set(invalidHeader, "1")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

func jsonOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

// TestOpenAPIDocument: openapi.json is a valid OpenAPI 3.1 document; every
// route of the API router and of the admin API is in it with its method,
// and it documents no route that neither registers (only the CORS
// preflights, answered before routing).
func TestOpenAPIDocument(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	documented := map[string]bool{} // "METHOD /path/{param}"
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}

	registered := map[string]bool{}
	ginParam := regexp.MustCompile(`:([A-Za-z_]+)`)
	api := httpapi.New(nil, quietLog())
	for _, r := range api.Routes() {
		registered[r[0]+" "+ginParam.ReplaceAllString(r[1], "{$1}")] = true
	}
	if !registered["GET /openapi.json"] || !registered["POST /v1/tenants/{tenant}/push"] {
		t.Fatalf("the API router's routes: %v", registered)
	}
	adminRoutes := adminPatterns(t)
	if len(adminRoutes) < 7 {
		t.Fatalf("found %d admin routes in core/admin/admin.go: %v", len(adminRoutes), adminRoutes)
	}
	for _, p := range adminRoutes {
		registered[p] = true
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is registered but not in openapi.json", r)
		}
	}
	for d := range documented {
		if !registered[d] && !strings.HasPrefix(d, "OPTIONS /v1/") {
			t.Errorf("openapi.json documents %s, which no router registers", d)
		}
	}
	// Every operation names its responses and security explicitly.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || op.Security == nil {
				t.Errorf("%s %s: operationId and security (empty for none) are required", method, path)
			}
			if strings.HasPrefix(path, "/admin/") && (len(item.Servers) == 0 || !slices.ContainsFunc(*op.Security, func(r openapi3.SecurityRequirement) bool { _, ok := r["adminToken"]; return ok })) {
				t.Errorf("%s %s: an admin path needs its servers override and the adminToken scheme", method, path)
			}
		}
	}
}

// adminPatterns are the patterns core/admin registers on its mux
// ("GET /admin/v1/tenants"), read from its source: an http.ServeMux
// cannot list them.
func adminPatterns(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(gotoken.NewFileSet(), "../admin/admin.go", nil, 0)
	must(t, err)
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != gotoken.STRING {
			t.Errorf("admin route with a pattern that is not a literal: %v", call.Args[0])
			return true
		}
		p, _ := strconv.Unquote(lit.Value)
		if !strings.Contains(p, " ") {
			t.Errorf("admin route %q has no method: document each method", p)
		}
		out = append(out, p)
		return true
	})
	return out
}

// TestOpenAPIConformance: a realistic session against the public and the
// admin API, every request and response validated against openapi.json.
func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		c := newConformance(t)
		e := newEnv(t, db)
		writeTenant(t, e.dir, "audit", "tombstoneRetention: 1h\n")
		st := e.db.OpenAt(t, e.dbURL, e.data)
		hub := live.NewHub()
		reg, errs := tenant.LoadDir(context.Background(), e.dir, tenant.Options{Store: st, Log: quietLog(), Live: hub})
		for _, err := range errs {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = reg.Close() })
		api := httpapi.New(reg, quietLog(), httpapi.WithReady(st.Ready), httpapi.WithLive(hub, 50*time.Millisecond))
		srv := httptest.NewServer(c.wrap(api))
		t.Cleanup(srv.Close)
		t.Cleanup(api.StopStreams)
		e.url = srv.URL // e.push, e.pull and friends go through the validator
		base := srv.URL
		tok := token(t, "acme", "oa")

		// Probes, metrics, the document itself.
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
			if code, body, _ := call(t, "GET", base+p, "", "", nil, false, nil); code != http.StatusOK {
				t.Errorf("GET %s: %d %s", p, code, body)
			} else if p == "/openapi.json" && !bytes.Equal(body, httpapi.OpenAPI()) {
				t.Error("GET /openapi.json does not serve openapi.json")
			}
		}

		// Push: applied events, then one event of each error type the
		// kanban tenant can produce, in one batch.
		ok(t, e.push(t, "acme", "oa", ev("", "User", "create", user("oa")), ev("", "Board", "create", board("oa-b", "oa", "B")),
			ev("", "Todo", "create", todo("oa-t1", "oa-b", "one")), ev("", "Todo", "create", todo("oa-t2", "oa-b", "two"))))
		wrongType := board("oa-b2", "oa", "x")
		wrongType["name"] = 5
		other := user("oa-other")
		other["email"] = "oa-other@example.com"
		res := e.push(t, "acme", "oa",
			ev("", "Nope", "create", board("x", "oa", "x")),
			ev("", "Board", "upsert", board("oa-b3", "oa", "x")),
			ev("", "Board", "create", wrongType),
			ev("", "Board", "delete", map[string]any{"name": "no id"}),
			ev("", "Todo", "create", todo("oa-t9", "never-a-board", "orphan")),
			ev("", "User", "create", other),
			ev("", "Todo", "delete", todo("oa-t2", "oa-b", "two")))
		var types []string
		for _, r := range res {
			types = append(types, errType(r))
		}
		want := []string{push.InvalidModel, push.UnknownOperation, push.RecordValidationFailure, push.KeyPathValidation, push.MissingParent, push.ScopeViolation, ""}
		if !slices.Equal(types, want) {
			t.Errorf("error types %q, want %q", types, want)
		}
		dup := user("oa")
		dup["email"] = "ad@example.com"
		ok(t, e.push(t, "acme", "ad", ev("", "User", "create", user("ad"))))
		if res := e.push(t, "acme", "oa", ev("", "User", "update", dup)); errType(res[0]) != push.RecordValidationFailure {
			t.Errorf("a unique conflict: %+v", res[0].Error)
		}
		// Idempotent replay: the same event again answers the same id.
		again := ev("oa-replay", "Todo", "create", todo("oa-t3", "oa-b", "three"))
		first, second := e.push(t, "acme", "oa", again), e.push(t, "acme", "oa", again)
		if *first[0].AppliedChangelogID != *second[0].AppliedChangelogID {
			t.Errorf("replay: %v then %v", *first[0].AppliedChangelogID, *second[0].AppliedChangelogID)
		}

		pushURL := base + "/v1/tenants/acme/push"
		for name, tc := range map[string]struct {
			body     []byte
			violates bool
			want     int
		}{
			"malformed JSON":     {[]byte(`{"events": [`), true, 400},
			"unknown body field": {[]byte(`{"events": [], "x": 1}`), true, 400},
			"no events":          {[]byte(`{}`), true, 400},
			"unknown event field": {jsonOf(t, map[string]any{"events": []any{
				map[string]any{"id": "e1", "entityType": "Board", "operation": "create", "payload": board("b", "oa", "b"), "x": 1}}}), true, 400},
			"event without id": {jsonOf(t, map[string]any{"events": []any{
				map[string]any{"entityType": "Board", "operation": "create", "payload": board("b", "oa", "b")}}}), true, 400},
			"NUL in the id (a 400 the schema cannot see)": {jsonOf(t, map[string]any{"events": []any{ev("a\x00b", "Board", "create", board("b", "oa", "b"))}}), false, 400},
			"over maxBatch": {jsonOf(t, map[string]any{"events": func() []any {
				var evs []any
				for i := range 101 {
					evs = append(evs, ev("", "Todo", "create", todo(fmt.Sprint("oa-many-", i), "oa-b", "x")))
				}
				return evs
			}()}), false, 413},
			"over maxBodyBytes": {jsonOf(t, map[string]any{"events": []any{ev("", "Todo", "create", todo("oa-big", "oa-b", strings.Repeat("x", 1<<20+1)))}}), false, 413},
		} {
			if code, body, _ := call(t, "POST", pushURL, tok, "application/json", tc.body, tc.violates, nil); code != tc.want {
				t.Errorf("push, %s: %d %s, want %d", name, code, body, tc.want)
			}
		}
		emptyPush := jsonOf(t, map[string]any{"events": []any{}})
		if code, body, hdr := call(t, "POST", pushURL, "", "application/json", emptyPush, true, nil); code != 401 || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("push without a token: %d %s", code, body)
		}
		if code, body, _ := call(t, "POST", pushURL, token(t, "beta", "oa"), "application/json", emptyPush, false, nil); code != 401 {
			t.Errorf("push with another tenant's token: %d %s", code, body)
		}
		if code, body, _ := call(t, "POST", base+"/v1/tenants/nope/push", tok, "application/json", emptyPush, false, nil); code != 404 {
			t.Errorf("push to an unknown tenant: %d %s", code, body)
		}

		// Pull: pages along the cursor, one scope, nothing new, a long
		// poll, an empty first pull, and the refusals.
		var all int
		for req := (map[string]any{"limit": 2}); ; {
			page := e.pull(t, "acme", "oa", req)
			if len(page.LogsWithRecords) == 0 {
				break
			}
			all += len(page.LogsWithRecords)
			req = map[string]any{"limit": 2, "lastChangelogId": *page.Cursor}
		}
		if all < 5 {
			t.Errorf("pulled %d entries", all)
		}
		scoped := e.pull(t, "acme", "oa", map[string]any{"scopeKey": "oa", "limit": 100})
		e.pull(t, "acme", "oa", map[string]any{"scopeKey": "oa", "lastChangelogId": *scoped.Cursor, "waitMs": 20})
		e.pull(t, "acme", "oa", map[string]any{"lastChangelogId": nil, "limit": nil, "scopeKey": nil, "waitMs": nil})
		if fresh := e.pull(t, "acme", "nobody", map[string]any{}); fresh.Cursor != nil || len(fresh.LogsWithRecords) != 0 {
			t.Errorf("an empty first pull: %+v", fresh)
		}
		pullURL := base + "/v1/tenants/acme/pull"
		if code, body, _ := call(t, "POST", pullURL, tok, "", nil, false, nil); code != 200 {
			t.Errorf("pull with an empty body: %d %s", code, body)
		}
		for name, tc := range map[string]struct {
			body     string
			violates bool
			want     int
		}{
			"limit 0":        {`{"limit": 0}`, true, 400},
			"waitMs too big": {`{"waitMs": 30001}`, true, 400},
			"unknown field":  {`{"cursor": "x"}`, true, 400},
			"empty scopeKey": {`{"scopeKey": ""}`, true, 400},
			"malformed JSON": {`{"limit":`, true, 400},
			"bad cursor":     {`{"lastChangelogId": "not-a-cursor"}`, false, 400},
			"foreign scope":  {`{"scopeKey": "ad"}`, false, 403},
			"too large":      {`{"scopeKey": "` + strings.Repeat("x", 1<<20) + `"}`, false, 413},
		} {
			if code, body, _ := call(t, "POST", pullURL, tok, "application/json", []byte(tc.body), tc.violates, nil); code != tc.want {
				t.Errorf("pull, %s: %d %.300s, want %d", name, code, body, tc.want)
			}
		}
		if code, body, _ := call(t, "POST", pullURL, "", "application/json", []byte(`{}`), true, nil); code != 401 {
			t.Errorf("pull without a token: %d %s", code, body)
		}
		if code, body, _ := call(t, "POST", pullURL, "not-a-jwt", "application/json", []byte(`{}`), false, nil); code != 401 {
			t.Errorf("pull with a bad token: %d %s", code, body)
		}
		if code, body, _ := call(t, "POST", base+"/v1/tenants/nope/pull", tok, "application/json", []byte(`{}`), false, nil); code != 404 {
			t.Errorf("pull from an unknown tenant: %d %s", code, body)
		}
		// The rate limit (the "limited" tenant allows one request, then
		// one per 100 s).
		var limited []int
		for range 2 {
			code, _, hdr := call(t, "POST", base+"/v1/tenants/limited/pull", token(t, "limited", "oa"), "application/json", []byte(`{}`), false, nil)
			if code == 429 && hdr.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			limited = append(limited, code)
		}
		if !slices.Equal(limited, []int{200, 429}) {
			t.Errorf("limited tenant: %v, want 200 then 429", limited)
		}
		// 410: a cursor behind tombstones the tenant dropped.
		ok(t, e.push(t, "audit", "oa", ev("", "User", "create", user("oa")), ev("", "Board", "create", board("oa-ab", "oa", "B"))))
		stale := e.pull(t, "audit", "oa", map[string]any{"limit": 1}).Cursor
		ok(t, e.push(t, "audit", "oa", ev("", "Board", "delete", board("oa-ab", "oa", "B"))))
		if n, err := reg.Get("audit").Store.DropTombstones(t.Context(), time.Now().Add(time.Hour), 100); err != nil || n != 1 {
			t.Fatalf("DropTombstones = %d, %v", n, err)
		}
		if code, body, _ := call(t, "POST", base+"/v1/tenants/audit/pull", token(t, "audit", "oa"), "application/json",
			jsonOf(t, map[string]any{"lastChangelogId": *stale}), false, nil); code != http.StatusGone {
			t.Errorf("pull behind dropped tombstones: %d %s", code, body)
		}

		// Live updates: the stream's status and headers, its opening
		// comment and a poke whose data matches PokeData.
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/tenants/acme/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
		}
		rd := bufio.NewReader(resp.Body)
		if l, _ := rd.ReadString('\n'); l != ": connected\n" {
			t.Errorf("events opened with %q", l)
		}
		hub.Publish(live.Poke{Tenant: "acme", Scope: "oa", ChangelogID: "019abcde-0000-7000-8000-000000000000"})
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("events: %v", err)
			}
			if data, ok := strings.CutPrefix(l, "data: "); ok {
				var v any
				must(t, json.Unmarshal([]byte(data), &v))
				if err := c.schema("PokeData", v); err != nil {
					t.Errorf("poke %s: %v", data, err)
				}
				break
			}
		}
		cancel()
		resp.Body.Close()
		if code, body, _ := call(t, "GET", base+"/v1/tenants/acme/events", "", "", nil, true, nil); code != 401 {
			t.Errorf("events without a token: %d %s", code, body)
		}
		if code, body, _ := call(t, "GET", base+"/v1/tenants/nope/events", tok, "", nil, false, nil); code != 404 {
			t.Errorf("events of an unknown tenant: %d %s", code, body)
		}

		// CORS preflights, from a listed origin and from another one.
		for _, p := range []string{"push", "pull", "events"} {
			for origin, allowed := range map[string]bool{"https://app.example": true, "https://evil.example": false} {
				code, body, hdr := call(t, "OPTIONS", base+"/v1/tenants/signin/"+p, "", "", nil, false,
					map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
				if code != 204 || (hdr.Get("Access-Control-Allow-Origin") != "") != allowed {
					t.Errorf("preflight of %s from %s: %d %v %s", p, origin, code, hdr, body)
				}
			}
		}

		// The admin API, on its own handler.
		ah, err := admin.New(admin.Options{Tenants: reg, Store: st, Token: adminTok, Log: quietLog(),
			Reload: func(_ context.Context, id string) error {
				if id == "beta" {
					return errors.New("manifest: refused for the test")
				}
				return nil
			}})
		must(t, err)
		asrv := httptest.NewServer(c.wrap(ah))
		t.Cleanup(asrv.Close)
		adm := func(method, path string, body any, violates bool) (int, []byte, http.Header) {
			t.Helper()
			var b []byte
			ct := ""
			if body != nil {
				b, ct = jsonOf(t, body), "application/json"
			}
			return call(t, method, asrv.URL+path, adminTok, ct, b, violates, nil)
		}
		for _, tk := range []string{"", "wrong-token-0123456789"} {
			if code, body, _ := call(t, "GET", asrv.URL+"/admin/v1/tenants", tk, "", nil, tk == "", nil); code != 401 {
				t.Errorf("admin with token %q: %d %s", tk, code, body)
			}
		}
		for _, tc := range []struct {
			method, path string
			body         any
			violates     bool
			want         int
		}{
			{"GET", "/admin/v1/tenants", nil, false, 200},
			{"GET", "/admin/v1/openapi.json", nil, false, 200},
			{"GET", "/admin/v1/replicas", nil, false, 200},
			{"GET", "/admin/v1/tenants/acme/scopes/oa", nil, false, 200},
			{"GET", "/admin/v1/tenants/acme/scopes/never-written", nil, false, 200},
			{"GET", "/admin/v1/tenants/nope/scopes/oa", nil, false, 404},
			{"GET", "/admin/v1/tenants/nope/scopes/oa/export", nil, false, 404},
			{"POST", "/admin/v1/tenants/acme/policy/explain", map[string]any{"subject": "oa", "scope": "oa", "model": "Todo", "action": "create"}, false, 200},
			{"POST", "/admin/v1/tenants/acme/policy/explain", map[string]any{"subject": "oa", "scope": "ad", "model": "Todo", "action": "pull", "roles": map[string]string{"ad": "viewer"}}, false, 200},
			{"POST", "/admin/v1/tenants/acme/policy/explain", map[string]any{"subject": "oa"}, true, 400},
			{"POST", "/admin/v1/tenants/acme/policy/explain", map[string]any{"subject": "oa", "scope": "oa", "model": "Todo", "action": "write"}, true, 400},
			{"POST", "/admin/v1/tenants/nope/policy/explain", map[string]any{"subject": "oa", "scope": "oa", "model": "Todo", "action": "create"}, false, 404},
			{"POST", "/admin/v1/tenants/acme/reload", nil, false, 200},
			{"POST", "/admin/v1/tenants/beta/reload", nil, false, 422},
			{"POST", "/admin/v1/tenants/nope/reload", nil, false, 404},
			{"POST", "/admin/v1/tenants/nope/scopes/oa/erase", nil, false, 404},
			{"POST", "/admin/v1/tenants/acme/compact", nil, false, 200},
			{"POST", "/admin/v1/tenants/nope/compact", nil, false, 404},
			{"GET", "/admin/v1/tenants", nil, false, 200}, // beta's refused reload listed
		} {
			if code, body, _ := adm(tc.method, tc.path, tc.body, tc.violates); code != tc.want {
				t.Errorf("admin %s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
		}
		// The export: its content type, and each line an ExportLine.
		code, body, hdr := adm("GET", "/admin/v1/tenants/acme/scopes/oa/export", nil, false)
		if code != 200 || hdr.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("export: %d %s", code, hdr.Get("Content-Type"))
		}
		lines := 0
		for sc := bufio.NewScanner(bytes.NewReader(body)); sc.Scan(); lines++ {
			var v any
			must(t, json.Unmarshal(sc.Bytes(), &v))
			if err := c.schema("ExportLine", v); err != nil {
				t.Errorf("export line %s: %v", sc.Bytes(), err)
			}
		}
		if lines < 4 {
			t.Errorf("export: %d lines\n%s", lines, body)
		}
		if code, body, _ := adm("POST", "/admin/v1/tenants/acme/scopes/oa/erase", nil, false); code != 200 {
			t.Errorf("erase: %d %s", code, body)
		}
		if code, body, _ := adm("GET", "/admin/v1/tenants/acme/scopes/oa/export", nil, false); code != 200 || len(body) != 0 {
			t.Errorf("export after the erasure: %d %q", code, body)
		}

		// Each operation of the document was called and answered.
		srv.Close() // waits for the event stream's validation
		asrv.Close()
		for path, item := range c.doc.Paths.Map() {
			for method, op := range item.Operations() {
				got := c.statuses(op.OperationID)
				if !slices.ContainsFunc(got, func(s int) bool { return s < 300 }) {
					t.Errorf("%s %s (%s): never answered a success in this session (got %v)", method, path, op.OperationID, got)
				}
			}
		}
		t.Logf("statuses seen: %v", c.seen)
	})
}
