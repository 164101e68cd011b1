// Package admin is syncplane's admin API, served on the admin address
// (serve --admin-addr) next to pprof and /metrics, and only when an admin
// token is configured: every call carries it as a bearer token, and every
// call is logged with who made it (the caller's address and the token's
// fingerprint) and what it asked. See README, "Admin API".
package admin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/tenant"
)

// Options configure the admin API.
type Options struct {
	Tenants *tenant.Registry
	Store   *store.Store
	// Token is the admin bearer token; New refuses an empty one.
	Token string
	// Reload loads tenant id again from its folder (nil: no reloads).
	Reload func(ctx context.Context, id string) error
	Log    *slog.Logger
}

// New returns the admin API's handler, under /admin/v1/.
func New(opt Options) (http.Handler, error) {
	if len(opt.Token) < 16 {
		return nil, errors.New("admin token: at least 16 characters")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256([]byte(opt.Token))
	a := &api{opt: opt, who: "token:" + hex.EncodeToString(sum[:4])}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/tenants", a.tenants)
	mux.HandleFunc("POST /admin/v1/tenants/{tenant}/reload", a.reload)
	mux.HandleFunc("POST /admin/v1/tenants/{tenant}/policy/explain", a.explain)
	mux.HandleFunc("POST /admin/v1/tenants/{tenant}/compact", a.compact)
	mux.HandleFunc("GET /admin/v1/tenants/{tenant}/scopes/{scope}", a.scopeStats)
	mux.HandleFunc("GET /admin/v1/tenants/{tenant}/scopes/{scope}/export", a.export)
	mux.HandleFunc("POST /admin/v1/tenants/{tenant}/scopes/{scope}/erase", a.erase)
	mux.HandleFunc("GET /admin/v1/replicas", a.replicas)
	mux.HandleFunc("GET /admin/v1/openapi.json", httpapi.ServeOpenAPI)
	return a.guard(mux), nil
}

type api struct {
	opt Options
	who string // the token's fingerprint, for the log
}

// guard checks the bearer token and logs every call, allowed or not.
func (a *api) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.opt.Token)) != 1 {
			a.opt.Log.Warn("admin call refused", "remote", r.RemoteAddr, "method", r.Method, "path", logPath(r.URL.Path))
			w.Header().Set("WWW-Authenticate", `Bearer realm="syncplane-admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		a.opt.Log.Info("admin call", "who", a.who, "remote", r.RemoteAddr, "method", r.Method, "path", logPath(r.URL.Path),
			"status", sw.status, "duration", time.Since(start))
	})
}

// logPath is path as the log shows it: a scope (a user's id, as a rule)
// only by the start of its SHA-256.
func logPath(path string) string {
	parts := strings.Split(path, "/")
	// "", "admin", "v1", "tenants", "{t}", "scopes", "{scope}", …
	if len(parts) > 6 && parts[5] == "scopes" {
		sum := sha256.Sum256([]byte(parts[6]))
		parts[6] = "sha256:" + hex.EncodeToString(sum[:6])
	}
	return strings.Join(parts, "/")
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// storeError answers an error of the store: 503 when the database cannot
// serve now, 500 otherwise.
func storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, syncdata.ErrUnavailable) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

// TenantStatus is one tenant as GET /admin/v1/tenants lists it.
type TenantStatus struct {
	ID string `json:"id"`
	// Status is loaded, refused (its folder failed to load: the error) or
	// unavailable (its database did not answer at load). A loaded tenant
	// whose folder failed its last reload keeps serving and has the Error.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Database is where its data lives and that database's connections
	// in this process.
	Database *store.DatabaseStats `json:"database,omitempty"`
	Dir      string               `json:"dir,omitempty"`
	// SchemaDigest identifies the storage layout its schema makes.
	SchemaDigest string    `json:"schemaDigest,omitempty"`
	Models       []string  `json:"models,omitempty"`
	Validator    *PlugInfo `json:"validator,omitempty"`
}

// PlugInfo is a tenant's validator plugin as it answers.
type PlugInfo struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (a *api) tenants(w http.ResponseWriter, r *http.Request) {
	out := []TenantStatus{}
	refused := a.opt.Tenants.Refused()
	for _, id := range a.opt.Tenants.IDs() {
		t := a.opt.Tenants.Get(id)
		if t == nil {
			continue
		}
		db := t.Store.Database()
		st := TenantStatus{ID: id, Status: "loaded", Dir: t.Dir, Database: &db}
		if err := refused[id]; err != nil {
			st.Error = "last reload refused: " + err.Error()
		}
		if l, err := store.LayoutOf(t.Schema, t.Own); err == nil {
			st.SchemaDigest = l.Hash()
			for _, tb := range l.Tables {
				st.Models = append(st.Models, tb.Model)
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		if name, version, ok, err := t.ValidatorInfo(ctx); ok {
			st.Validator = &PlugInfo{Name: name, Version: version}
			if err != nil {
				st.Validator.Error = err.Error()
			}
		}
		cancel()
		out = append(out, st)
	}
	unavailable := a.opt.Tenants.Unavailables()
	for id, err := range unavailable {
		out = append(out, TenantStatus{ID: id, Status: "unavailable", Error: err.Error()})
	}
	for id, err := range refused {
		if a.opt.Tenants.Get(id) == nil && unavailable[id] == nil {
			out = append(out, TenantStatus{ID: id, Status: "refused", Error: err.Error()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out})
}

func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("tenant")
	if a.opt.Reload == nil {
		writeError(w, http.StatusNotImplemented, "reloads are not available here (no tenants directory)")
		return
	}
	if a.opt.Tenants.Get(id) == nil && a.opt.Tenants.Unavailable(id) == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown tenant %q", id))
		return
	}
	if err := a.opt.Reload(r.Context(), id); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error(), "status": "refused; the running version keeps serving"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// CompactReport is what POST .../compact removed.
type CompactReport struct {
	Before     int64   `json:"entriesBefore"`
	Superseded int64   `json:"supersededRemoved"`
	Tombstones int64   `json:"tombstonesRemoved"`
	After      int64   `json:"entriesAfter"`
	Deletes    int64   `json:"tombstonesKept"`
	Seconds    float64 `json:"seconds"`
}

// compact compacts the tenant's changelog now (store.Tenant.Compact, as
// `syncplane compact` does), in short batches beside the pushes.
func (a *api) compact(w http.ResponseWriter, r *http.Request) {
	t := a.tenant(w, r)
	if t == nil {
		return
	}
	rep, err := t.Store.Compact(r.Context(), store.CompactOptions{})
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, CompactReport{Before: rep.Before, Superseded: rep.Superseded, Tombstones: rep.Tombstones,
		After: rep.After, Deletes: rep.Deletes, Seconds: rep.Took.Seconds()})
}

// explainRequest asks whether subject may act on model in scope.
type explainRequest struct {
	Subject string            `json:"subject"`
	Roles   map[string]string `json:"roles"`
	Scope   string            `json:"scope"`
	Model   string            `json:"model"`
	Action  string            `json:"action"`
}

func (a *api) explain(w http.ResponseWriter, r *http.Request) {
	t := a.tenant(w, r)
	if t == nil {
		return
	}
	var req explainRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Subject == "" || req.Scope == "" || req.Model == "" || req.Action == "" {
		writeError(w, http.StatusBadRequest, `body: {"subject", "scope", "model", "action" (required), "roles" (optional)}`)
		return
	}
	switch req.Action {
	case policy.ActCreate, policy.ActUpdate, policy.ActDelete, policy.ActPull:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("action %q: one of create, update, delete, pull", req.Action))
		return
	}
	allowed, lines, err := t.Policy.Explain(req.Subject, req.Roles, req.Scope, req.Model, req.Action)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	matched := []string{}
	for _, l := range lines {
		matched = append(matched, l.String())
	}
	writeJSON(w, http.StatusOK, map[string]any{"allowed": allowed, "lines": matched})
}

// tenant is the running tenant of the request's path, or nil once it
// answered 404.
func (a *api) tenant(w http.ResponseWriter, r *http.Request) *tenant.Tenant {
	t := a.opt.Tenants.Get(r.PathValue("tenant"))
	if t == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown tenant %q", r.PathValue("tenant")))
	}
	return t
}

func (a *api) scopeStats(w http.ResponseWriter, r *http.Request) {
	t := a.tenant(w, r)
	if t == nil {
		return
	}
	st, err := t.Store.ScopeStats(r.Context(), r.PathValue("scope"))
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// exportPage is how many entries export reads at a time.
const exportPage = 500

// export streams the records of a scope as JSON lines, one per live
// record: {"model", "key" (its primary key values), "record"} in the wire
// format pull sends. The scope is read after a cursor, a page at a time,
// so memory does not grow with the scope; records written meanwhile may
// or may not be in it, each at most once.
func (a *api) export(w http.ResponseWriter, r *http.Request) {
	t := a.tenant(w, r)
	if t == nil {
		return
	}
	scope := r.PathValue("scope")
	after := ""
	bw := bufio.NewWriterSize(w, 64<<10)
	started := false
	for {
		n := 0
		err := t.Store.ReadPageJSON(r.Context(), map[string]string{scope: after}, exportPage, func(e *syncdata.PageEntry) (bool, error) {
			n++
			after = e.ID
			if e.Repeat || e.JSON == nil {
				return true, nil
			}
			if !started {
				w.Header().Set("Content-Type", "application/x-ndjson")
				started = true
			}
			bw.WriteString(`{"model":`)
			m, _ := json.Marshal(e.Model)
			bw.Write(m)
			bw.WriteString(`,"key":`)
			bw.Write(e.KeyPath)
			bw.WriteString(`,"record":`)
			bw.Write(e.JSON)
			_, err := bw.WriteString("}\n")
			return err == nil, err
		})
		if err != nil {
			if !started {
				storeError(w, err)
				return
			}
			// Headers are gone: cut the stream short, which the client
			// sees as a body that does not end in a complete line.
			a.opt.Log.Warn("admin export cut short", "tenant", t.Manifest.ID, "err", err)
			return
		}
		if n < exportPage {
			break
		}
	}
	if !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	_ = bw.Flush()
}

// erase deletes a scope's records (tenant.Tenant.EraseScope) and logs an
// audit line that names the scope by its SHA-256 only.
func (a *api) erase(w http.ResponseWriter, r *http.Request) {
	t := a.tenant(w, r)
	if t == nil {
		return
	}
	scope := r.PathValue("scope")
	rep, err := t.EraseScope(r.Context(), scope)
	if err != nil {
		storeError(w, err)
		return
	}
	sum := sha256.Sum256([]byte(scope))
	a.opt.Log.Info("scope erased", "who", a.who, "tenant", t.Manifest.ID, "scope_sha256", hex.EncodeToString(sum[:]),
		"records", rep.Records, "deletes", rep.Deletes, "other_scopes", rep.OtherScopes, "ledger_rows", rep.LedgerRows, "history_rows", rep.HistoryRows)
	writeJSON(w, http.StatusOK, rep)
}

func (a *api) replicas(w http.ResponseWriter, r *http.Request) {
	out := a.opt.Store.Replicas()
	if out == nil {
		out = []store.ReplicaStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replicas": out})
}
