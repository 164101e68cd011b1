package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ceilingSchema is the scratch schema ceiling mode writes into; it is
// dropped before and after each pass.
const ceilingSchema = "syncbench_ceiling"

// CeilingReport is the database's own limit for the run's rows.
type CeilingReport struct {
	Insert   CeilingPass   `json:"insert"` // multi-row INSERT … ON CONFLICT per batch
	Copy     CeilingPass   `json:"copy"`   // COPY for new rows
	Verified bool          `json:"verified"`
	Verify   *Verification `json:"verification"`
}

// CeilingPass is one way of writing the rows, then reading them back.
type CeilingPass struct {
	Push PushStats `json:"push"`
	Pull PullStats `json:"pull"`
}

type colKind byte

const (
	kString colKind = iota
	kBool
	kTime
)

type colDef struct {
	name string
	kind colKind
	null bool
}

type modelDef struct {
	cols   []colDef
	parent string // FK column, "" for the root
	ref    string // the parent's model
}

// ceilingModels mirrors the demo schema's tables as syncplane creates them.
var ceilingModels = map[string]modelDef{
	"User": {cols: []colDef{{"id", kString, false}, {"name", kString, false}, {"email", kString, false},
		{"emailVerified", kBool, false}, {"image", kString, true}, {"createdAt", kTime, false},
		{"updatedAt", kTime, false}, {"isAnonymous", kBool, true}}},
	"Board": {cols: []colDef{{"id", kString, false}, {"name", kString, false}, {"createdAt", kTime, false},
		{"userId", kString, false}}, parent: "userId", ref: "User"},
	"Todo": {cols: []colDef{{"id", kString, false}, {"title", kString, false}, {"description", kString, true},
		{"isCompleted", kBool, false}, {"createdAt", kTime, false}, {"boardId", kString, false}}, parent: "boardId", ref: "Board"},
}

var changelogCols = []string{"id", "model", "key_path", "operation", "scope_key", "outbox_event_id", "created_at"}

var ledgerCols = []string{"subject", "event_id", "changelog_id", "applied_at"}

func qi(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
func qt(name string) string { return qi(ceilingSchema) + "." + qi(name) }

func (m modelDef) colNames() []string {
	out := make([]string, len(m.cols))
	for i, c := range m.cols {
		out[i] = c.name
	}
	return out
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = qi(n)
	}
	return strings.Join(q, ", ")
}

// ceilingDDL creates the tables syncplane's push writes on PostgreSQL: the
// models, the changelog (its outbox_event_id a plain column), the scope
// heads and the _applied_events ledger, with syncplane's indexes.
func ceilingDDL() []string { return schemaDDL(false) }

// referenceDDL creates the tables of prisma-idb's reference server: the
// same models and changelog, whose outbox_event_id is unique (its
// idempotency key), and neither scope heads nor ledger.
func referenceDDL() []string { return schemaDDL(true) }

func schemaDDL(reference bool) []string {
	stmts := []string{
		"DROP SCHEMA IF EXISTS " + qi(ceilingSchema) + " CASCADE",
		"CREATE SCHEMA " + qi(ceilingSchema),
	}
	for _, name := range modelOrder {
		m := ceilingModels[name]
		var defs []string
		for _, c := range m.cols {
			typ := map[colKind]string{kString: "text", kBool: "boolean", kTime: "timestamptz(3)"}[c.kind]
			if !c.null {
				typ += " NOT NULL"
			}
			defs = append(defs, qi(c.name)+" "+typ)
		}
		defs = append(defs, `PRIMARY KEY ("id")`)
		if m.parent != "" {
			defs = append(defs, fmt.Sprintf(`FOREIGN KEY (%s) REFERENCES %s ("id") ON DELETE CASCADE`, qi(m.parent), qt(m.ref)))
		}
		stmts = append(stmts, "CREATE TABLE "+qt(name)+" ("+strings.Join(defs, ", ")+")")
		if m.parent != "" {
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX %s ON %s (%s)", qi(name+"_"+m.parent+"_idx"), qt(name), qi(m.parent)))
		}
	}
	unique := ""
	if reference {
		unique = " UNIQUE"
	}
	stmts = append(stmts,
		`CREATE UNIQUE INDEX "User_email_key" ON `+qt("User")+` ("email")`,
		"CREATE TABLE "+qt("_changelog")+` (id text COLLATE "C" PRIMARY KEY, model TEXT NOT NULL, key_path TEXT NOT NULL, `+
			`operation TEXT NOT NULL, scope_key text COLLATE "C" NOT NULL, outbox_event_id TEXT NOT NULL`+unique+`, created_at timestamptz(3) NOT NULL)`,
		`CREATE INDEX "_changelog_scope_id" ON `+qt("_changelog")+" (scope_key, id)",
		`CREATE INDEX "_changelog_record" ON `+qt("_changelog")+" (model, key_path, id)",
		`CREATE INDEX "_changelog_scope_record" ON `+qt("_changelog")+" (scope_key, model, key_path)",
	)
	if !reference {
		stmts = append(stmts,
			"CREATE TABLE "+qt("_scope_heads")+` (scope_key text COLLATE "C" PRIMARY KEY, last_id TEXT NOT NULL)`,
			"CREATE TABLE "+qt("_applied_events")+` (subject text COLLATE "C" NOT NULL, event_id text COLLATE "C" NOT NULL, `+
				"changelog_id TEXT NOT NULL, applied_at timestamptz(3) NOT NULL, PRIMARY KEY (subject, event_id))",
			`CREATE INDEX "_applied_events_at" ON `+qt("_applied_events")+" (applied_at)",
		)
	}
	return stmts
}

// scratchPool connects to dsn with a connection per client (and one
// more); release drops the scratch schema and closes the pool.
func scratchPool(ctx context.Context, dsn string, clients int) (*pgxpool.Pool, func(), error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	cfg.MaxConns = int32(clients + 1)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return pool, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+qi(ceilingSchema)+" CASCADE")
		pool.Close()
	}, nil
}

// RunCeiling writes the plan's rows straight into PostgreSQL, once with
// multi-row INSERTs per batch and once with COPY, reads each back by page
// and verifies it like a pull.
func RunCeiling(ctx context.Context, dsn string, p *Plan, batch, clients, limit int) (*CeilingReport, error) {
	pool, release, err := scratchPool(ctx, dsn, clients)
	if err != nil {
		return nil, err
	}
	defer release()
	rep := &CeilingReport{Verify: &Verification{}}
	for _, useCopy := range []bool{false, true} {
		for _, s := range ceilingDDL() {
			if _, err := pool.Exec(ctx, s); err != nil {
				return nil, fmt.Errorf("%s: %w", s, err)
			}
		}
		pass, err := ceilingPass(ctx, pool, p, batch, clients, limit, useCopy, rep.Verify)
		if err != nil {
			return nil, err
		}
		if useCopy {
			rep.Copy = *pass
		} else {
			rep.Insert = *pass
		}
	}
	rep.Verified = rep.Verify.OK()
	return rep, nil
}

var ceilingSeq atomic.Int64

func ceilingPass(ctx context.Context, pool *pgxpool.Pool, p *Plan, batch, clients, limit int, useCopy bool, v *Verification) (*CeilingPass, error) {
	acks := map[string]Acks{}
	for _, u := range p.Users {
		acks[u.ID] = Acks{}
	}
	l := &latencies{}
	start := time.Now()
	err := forEachClient(clients, p.Users, func(u *UserPlan) error {
		exists := map[string]bool{}
		for _, round := range u.Rounds {
			for _, b := range batches(round, batch) {
				bs := time.Now()
				if err := writeBatch(ctx, pool, u, b, exists, acks[u.ID], useCopy); err != nil {
					return fmt.Errorf("user %s: %w", u.ID, err)
				}
				l.add(time.Since(bs))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pass := &CeilingPass{Push: pushStats(p.Events(-1), time.Since(start), l, 0)}
	if err := checkLedger(ctx, pool, p.Events(-1), len(p.Users), v); err != nil {
		return nil, err
	}

	if pass.Pull, err = readBackAll(ctx, pool, p, clients, limit, acks, v, false); err != nil {
		return nil, err
	}
	return pass, nil
}

// checkLedger verifies, after the clock, that the pass wrote a ledger row
// per event and left each scope's head at its last changelog entry.
func checkLedger(ctx context.Context, pool *pgxpool.Pool, events, scopes int, v *Verification) error {
	var ledger, heads, stale int
	err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+qt("_applied_events")+"), (SELECT count(*) FROM "+qt("_scope_heads")+"), "+
		"(SELECT count(*) FROM "+qt("_scope_heads")+" h WHERE h.last_id <> (SELECT max(id) FROM "+qt("_changelog")+" c WHERE c.scope_key = h.scope_key))").
		Scan(&ledger, &heads, &stale)
	if err != nil {
		return err
	}
	if ledger != events || heads != scopes || stale != 0 {
		v.failf("ceiling: %d ledger rows (want %d), %d scope heads (want %d), %d not at their scope's last entry", ledger, events, heads, scopes, stale)
	}
	return nil
}

// readBackAll reads every user's rows back by page with clients
// concurrent readers, timing the pages, and verifies them after the clock
// (as syncplane's pulls are), as a compacted changelog unless history.
func readBackAll(ctx context.Context, pool *pgxpool.Pool, p *Plan, clients, limit int, acks map[string]Acks, v *Verification, history bool) (PullStats, error) {
	pages := &latencies{}
	var mu sync.Mutex
	entries := 0
	pulled := map[*UserPlan][]Entry{}
	start := time.Now()
	err := forEachClient(clients, p.Users, func(u *UserPlan) error {
		got, err := readBack(ctx, pool, u.ID, limit, pages)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.ID, err)
		}
		mu.Lock()
		entries += len(got)
		pulled[u] = got
		mu.Unlock()
		return nil
	})
	if err != nil {
		return PullStats{}, err
	}
	stats := pullStats(entries, time.Since(start), pages)
	for _, u := range p.Users {
		VerifyUser(v, u, acks[u.ID], pulled[u], history)
	}
	return stats, nil
}

// netChange is a record's state at the end of a batch.
type netChange struct {
	model   string
	id      string
	payload map[string]any
	deleted bool
	existed bool // before the batch
}

// writeBatch writes one batch in one transaction with the row work of
// syncplane's push: the net effect per record (upserts parents first,
// deletes children first), the latest changelog entry of each record
// after deleting its previous one in the scope (compaction), a ledger row
// per event in _applied_events (subject, event id → changelog id) and the
// scope's head moved to the batch's last id.
func writeBatch(ctx context.Context, pool *pgxpool.Pool, u *UserPlan, b []Event, exists map[string]bool, acks Acks, useCopy bool) error {
	var order []string
	net := map[string]*netChange{}
	var changelog, ledger [][]any
	now := time.Now().UTC()
	for _, ev := range b {
		id := ev.Payload["id"].(string)
		key := recordKey(ev.EntityType, id)
		nc, ok := net[key]
		if !ok {
			nc = &netChange{model: ev.EntityType, id: id, existed: exists[key]}
			net[key] = nc
			order = append(order, key)
		}
		nc.payload, nc.deleted = ev.Payload, ev.Operation == "delete"
		cid := fmt.Sprintf("%020d", ceilingSeq.Add(1))
		kp, _ := json.Marshal([]string{id})
		changelog = append(changelog, []any{cid, ev.EntityType, string(kp), ev.Operation, u.ID, ev.ID, now})
		ledger = append(ledger, []any{u.ID, ev.ID, cid, now})
		acks[ev.ID] = cid
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	pl := &pipeline{tx: tx}
	for _, model := range modelOrder {
		m := ceilingModels[model]
		var copyRows, upsertRows [][]any
		for _, key := range order {
			nc := net[key]
			if nc.model != model || nc.deleted {
				continue
			}
			row, err := m.row(nc.payload)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if useCopy && !nc.existed {
				copyRows = append(copyRows, row)
			} else {
				upsertRows = append(upsertRows, row)
			}
		}
		if len(copyRows) > 0 {
			if err := pl.copyFrom(ctx, model, m.colNames(), copyRows); err != nil {
				return fmt.Errorf("COPY %s: %w", model, err)
			}
		}
		if len(upsertRows) > 0 {
			sets := make([]string, 0, len(m.cols))
			for _, c := range m.cols[1:] {
				sets = append(sets, qi(c.name)+" = EXCLUDED."+qi(c.name))
			}
			q, args := multiRow("INSERT INTO "+qt(model)+" ("+quoteAll(m.colNames())+") VALUES ", upsertRows)
			pl.exec("upsert "+model, q+` ON CONFLICT ("id") DO UPDATE SET `+strings.Join(sets, ", "), args...)
		}
	}
	for i := len(modelOrder) - 1; i >= 0; i-- {
		model := modelOrder[i]
		var ids []string
		for _, key := range order {
			if nc := net[key]; nc.model == model && nc.deleted && nc.existed {
				ids = append(ids, nc.id)
			}
		}
		if len(ids) > 0 {
			pl.exec("delete "+model, "DELETE FROM "+qt(model)+` WHERE "id" = ANY($1)`, ids)
		}
	}
	// The changelog keeps a record's latest entry per scope, as
	// syncplane's does: the batch's last entry of each record, after its
	// previous entry is deleted.
	var latest [][]any
	var scopes, models, keys []string
	for i, row := range changelog {
		if !slices.ContainsFunc(changelog[i+1:], func(later []any) bool { return later[1] == row[1] && later[2] == row[2] }) {
			latest = append(latest, row)
			scopes, models, keys = append(scopes, row[4].(string)), append(models, row[1].(string)), append(keys, row[2].(string))
		}
	}
	changelog = latest
	pl.exec("compact _changelog", "DELETE FROM "+qt("_changelog")+" c USING unnest($1::text[], $2::text[], $3::text[]) AS n(s, m, k)"+
		" WHERE c.scope_key = n.s AND c.model = n.m AND c.key_path = n.k", scopes, models, keys)
	for _, t := range []struct {
		name string
		cols []string
		rows [][]any
	}{{"_changelog", changelogCols, changelog}, {"_applied_events", ledgerCols, ledger}} {
		if useCopy {
			if err := pl.copyFrom(ctx, t.name, t.cols, t.rows); err != nil {
				return fmt.Errorf("COPY %s: %w", t.name, err)
			}
		} else {
			q, args := multiRow("INSERT INTO "+qt(t.name)+" ("+quoteAll(t.cols)+") VALUES ", t.rows)
			pl.exec("insert "+t.name, q, args...)
		}
	}
	head := ledger[len(ledger)-1][2]
	pl.exec("scope head", "INSERT INTO "+qt("_scope_heads")+" (scope_key, last_id) VALUES ($1, $2)"+
		" ON CONFLICT (scope_key) DO UPDATE SET last_id = EXCLUDED.last_id", u.ID, head)
	if err := pl.flush(ctx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for key, nc := range net {
		if nc.deleted {
			delete(exists, key)
		} else {
			exists[key] = true
		}
	}
	return nil
}

// pipeline queues a transaction's statements and sends them together, in
// order, as one pgx batch (one round trip): before a COPY, which goes on
// its own, and at the end. syncplane's push, likewise, sends its writes as
// one combined statement.
type pipeline struct {
	tx    pgx.Tx
	batch pgx.Batch
	what  []string
}

func (p *pipeline) exec(what, q string, args ...any) {
	p.batch.Queue(q, args...)
	p.what = append(p.what, what)
}

func (p *pipeline) flush(ctx context.Context) error {
	if len(p.what) == 0 {
		return nil
	}
	res := p.tx.SendBatch(ctx, &p.batch)
	for _, what := range p.what {
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	p.batch, p.what = pgx.Batch{}, nil
	return res.Close()
}

func (p *pipeline) copyFrom(ctx context.Context, table string, cols []string, rows [][]any) error {
	if err := p.flush(ctx); err != nil {
		return err
	}
	_, err := p.tx.CopyFrom(ctx, pgx.Identifier{ceilingSchema, table}, cols, pgx.CopyFromRows(rows))
	return err
}

// row converts a payload to the table's column values.
func (m modelDef) row(payload map[string]any) ([]any, error) {
	row := make([]any, len(m.cols))
	for i, c := range m.cols {
		v := payload[c.name]
		if v != nil && c.kind == kTime {
			t, err := time.Parse(isoMillis, v.(string))
			if err != nil {
				return nil, err
			}
			v = t
		}
		row[i] = v
	}
	return row, nil
}

func multiRow(prefix string, rows [][]any) (string, []any) {
	var b strings.Builder
	b.WriteString(prefix)
	args := make([]any, 0, len(rows)*len(rows[0]))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, v := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			args = append(args, v)
			fmt.Fprintf(&b, "$%d", len(args))
		}
		b.WriteByte(')')
	}
	return b.String(), args
}

// readBack pages through a scope's changelog like a pull: one query for
// the page, one per model on the page for its records.
func readBack(ctx context.Context, pool *pgxpool.Pool, scope string, limit int, pages *latencies) ([]Entry, error) {
	var all []Entry
	cursor := ""
	for {
		start := time.Now()
		page, err := readPage(ctx, pool, scope, cursor, limit)
		if err != nil {
			return nil, err
		}
		pages.add(time.Since(start))
		if len(page) == 0 {
			return all, nil
		}
		all = append(all, page...)
		cursor = page[len(page)-1].ID
	}
}

func readPage(ctx context.Context, pool *pgxpool.Pool, scope, cursor string, limit int) ([]Entry, error) {
	rows, err := pool.Query(ctx, "SELECT id, model, key_path, operation, scope_key, outbox_event_id FROM "+qt("_changelog")+
		" WHERE scope_key = $1 AND id > $2 ORDER BY id LIMIT $3", scope, cursor, limit)
	if err != nil {
		return nil, err
	}
	var page []Entry
	ids := map[string][]string{}
	for rows.Next() {
		var e Entry
		var kp string
		if err := rows.Scan(&e.ID, &e.Model, &kp, &e.Operation, &e.ScopeKey, &e.OutboxEventID); err != nil {
			rows.Close()
			return nil, err
		}
		e.ChangelogID = e.ID
		if err := json.Unmarshal([]byte(kp), &e.KeyPath); err != nil || len(e.KeyPath) != 1 {
			rows.Close()
			return nil, fmt.Errorf("entry %s: key path %q", e.ID, kp)
		}
		ids[e.Model] = append(ids[e.Model], fmt.Sprint(e.KeyPath[0]))
		page = append(page, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	records := map[string]json.RawMessage{}
	for _, model := range modelOrder {
		if len(ids[model]) == 0 {
			continue
		}
		m := ceilingModels[model]
		rows, err := pool.Query(ctx, "SELECT "+quoteAll(m.colNames())+" FROM "+qt(model)+` WHERE "id" = ANY($1)`, ids[model])
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return nil, err
			}
			rec := make(map[string]any, len(vals))
			for i, v := range vals {
				if t, ok := v.(time.Time); ok {
					v = t.UTC().Format(isoMillis)
				}
				rec[m.cols[i].name] = v
			}
			b, err := json.Marshal(rec)
			if err != nil {
				rows.Close()
				return nil, err
			}
			records[recordKey(model, rec["id"].(string))] = b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	for i := range page {
		page[i].Record = records[recordKey(page[i].Model, fmt.Sprint(page[i].KeyPath[0]))]
	}
	return page, nil
}
