package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// BenchmarkPush pushes batches of 100 events (10 boards with 9 todos each)
// over HTTP, one batch per iteration, and reports events/s.
//
//	go test -run=^$ -bench=Push -benchtime=200x ./core/httpapi
func BenchmarkPush(b *testing.B) {
	for _, db := range storetest.Databases(b) {
		b.Run("db="+db.Name, func(b *testing.B) {
			e := newEnv(b, db)
			sub := "bench-push"
			ok(b, e.push(b, "acme", sub, ev("", "User", "create", user(sub))))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				events := make([]map[string]any, 0, 100)
				for j := 0; j < 10; j++ {
					bid := fmt.Sprintf("bp-%d-%d", i, j)
					events = append(events, ev("", "Board", "create", board(bid, sub, "b")))
					for k := 0; k < 9; k++ {
						events = append(events, ev("", "Todo", "create", todo(fmt.Sprintf("%s-%d", bid, k), bid, "t")))
					}
				}
				ok(b, e.push(b, "acme", sub, events...))
			}
			b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkPull pulls 50-entry pages over HTTP from a scope of 5,000
// entries, one page per iteration, and reports entries/s.
//
//	go test -run=^$ -bench=Pull -benchtime=500x ./core/httpapi
func BenchmarkPull(b *testing.B) {
	for _, db := range storetest.Databases(b) {
		b.Run("db="+db.Name, func(b *testing.B) {
			e := newEnv(b, db)
			sub := "bench-pull"
			ok(b, e.push(b, "acme", sub, ev("", "User", "create", user(sub))))
			for i := 0; i < 50; i++ {
				events := make([]map[string]any, 0, 100)
				bid := fmt.Sprintf("bl-%d", i)
				events = append(events, ev("", "Board", "create", board(bid, sub, "b")))
				for k := 0; k < 99; k++ {
					events = append(events, ev("", "Todo", "create", todo(fmt.Sprintf("%s-%d", bid, k), bid, "t")))
				}
				ok(b, e.push(b, "acme", sub, events...))
			}
			b.ResetTimer()
			start := time.Now()
			req := map[string]any{"limit": 50}
			entries := 0
			for i := 0; i < b.N; i++ {
				page := e.pull(b, "acme", sub, req)
				if len(page.LogsWithRecords) == 0 {
					req = map[string]any{"limit": 50} // wrap around
					page = e.pull(b, "acme", sub, req)
				}
				entries += len(page.LogsWithRecords)
				req = map[string]any{"limit": 50, "lastChangelogId": *page.Cursor}
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(entries)/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N)/1000, "ms/page")
		})
	}
}

// BenchmarkPushPolicy measures what a large policy costs a push: batches of
// 100 events (a new user, 9 boards, 90 todos), each by a new subject so the
// policy decisions are made cold, under the default policy and under a
// 10,000-line policy, on SQLite.
//
//	go test -run=^$ -bench=PushPolicy -benchtime=100x ./core/httpapi
func BenchmarkPushPolicy(b *testing.B) {
	var big strings.Builder
	big.WriteString("p, *, $self, *, *, allow\n")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&big, "g, member-%d, role-%d, team-%d\n", i, i%20, i%400)
	}
	for i := 0; i < 7999; i++ {
		fmt.Fprintf(&big, "p, role-%d, team-%d, %s, %s, allow\n", i%20, i%400, []string{"Board", "Todo", "User", "*"}[i%4], []string{"create", "update", "pull", "delete"}[i%4])
	}
	for name, policy := range map[string]string{"default": "", "10k-lines": big.String()} {
		b.Run("policy="+name, func(b *testing.B) {
			db := storetest.Databases(b)[0]
			root := b.TempDir()
			extra := ""
			if policy != "" {
				must(b, os.MkdirAll(filepath.Join(root, "acme"), 0o755))
				must(b, os.WriteFile(filepath.Join(root, "acme", "policy.csv"), []byte(policy), 0o644))
				extra = "policy: policy.csv\n"
			}
			writeTenant(b, root, "acme", extra)
			st := db.Open(b)
			reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog()})
			if len(errs) > 0 {
				b.Fatal(errs)
			}
			srv := httptest.NewServer(httpapi.New(reg, quietLog()))
			b.Cleanup(srv.Close)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				sub := fmt.Sprintf("pp-%d", i)
				events := []map[string]any{ev("", "User", "create", user(sub))}
				for j := 0; j < 9; j++ {
					bid := fmt.Sprintf("%s-b%d", sub, j)
					events = append(events, ev("", "Board", "create", board(bid, sub, "b")))
					for k := 0; k < 10 && len(events) < 100; k++ {
						events = append(events, ev("", "Todo", "create", todo(fmt.Sprintf("%s-%d", bid, k), bid, "t")))
					}
				}
				ok(b, pushTo(b, srv.URL, "acme", sub, events...))
			}
			b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkPushValidator measures the validator plugin's cost: 100-event
// batches on SQLite to a tenant without a validator and to one running
// plugins/kanban-rules, with no host read per batch (100 todos) and with
// one (a board, whose unique name the plugin checks through the host, and
// 99 todos).
//
//	go test -run=^$ -bench=PushValidator -benchtime=200x ./core/httpapi
func BenchmarkPushValidator(b *testing.B) {
	db := storetest.Databases(b)[0]
	url := validatorEnv(b, db, "")
	for _, tc := range []struct {
		name, tenant string
		reads        int
	}{{"validator=none", "beta", 0}, {"validator=kanban-rules/reads=0", "acme", 0}, {"validator=kanban-rules/reads=1", "acme", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			sub := "bv-" + strings.NewReplacer("=", "-", "/", "-").Replace(tc.name)
			ok(b, pushTo(b, url, tc.tenant, sub, ev("", "User", "create", user(sub)), ev("", "Board", "create", board(sub+"-b", sub, "base"))))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				events := make([]map[string]any, 0, 100)
				parent := sub + "-b"
				if tc.reads == 1 {
					parent = fmt.Sprintf("%s-b%d", sub, i)
					events = append(events, ev("", "Board", "create", board(parent, sub, parent)))
				}
				for len(events) < 100 {
					events = append(events, ev("", "Todo", "create", todo(fmt.Sprintf("%s-%d-%d", sub, i, len(events)), parent, "t")))
				}
				ok(b, pushTo(b, url, tc.tenant, sub, events...))
			}
			b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkUnionPull measures a union pull by a subject who may pull 100,
// 1,000 and 10,000 scopes (teams fan-*, each with a team and a project
// entry): "page" reads 50-entry pages following the cursor from the start
// (wrapping around at the end), "caught-up" pulls the empty page after the
// last entry (what a live client does on every poke). It reports the time
// per page and the largest cursor seen, in bytes.
//
//	go test -run=^$ -bench=UnionPull -benchtime=20x ./core/httpapi
func BenchmarkUnionPull(b *testing.B) {
	for _, db := range storetest.Databases(b) {
		for _, n := range []int{100, 1000, 10000} {
			b.Run(fmt.Sprintf("db=%s/scopes=%d", db.Name, n), func(b *testing.B) {
				e := newTeamsEnv(b, db)
				manyTeams(b, e, n)
				fan := teamsToken(b, "fan", nil)
				pullOnce := func(req map[string]any) pull.Response {
					page, _ := pullPage(b, e.url, "teams", fan, req)
					return page
				}
				// The cursor at the end of the stream.
				end := map[string]any{"limit": 500}
				for {
					page := pullOnce(end)
					if len(page.LogsWithRecords) == 0 {
						break
					}
					end = map[string]any{"limit": 500, "lastChangelogId": *page.Cursor}
				}
				b.Run("read=page", func(b *testing.B) {
					req, largest := map[string]any{"limit": 50}, 0
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						page := pullOnce(req)
						if len(page.LogsWithRecords) == 0 {
							req = map[string]any{"limit": 50}
							continue
						}
						largest = max(largest, len(*page.Cursor))
						req = map[string]any{"limit": 50, "lastChangelogId": *page.Cursor}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
					b.ReportMetric(float64(largest), "cursor-bytes")
				})
				b.Run("read=caught-up", func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						if page := pullOnce(end); len(page.LogsWithRecords) != 0 {
							b.Fatalf("%d entries after the end", len(page.LogsWithRecords))
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
					b.ReportMetric(float64(len(end["lastChangelogId"].(string))), "cursor-bytes")
				})
			})
		}
	}
}

// BenchmarkPullPage reads and encodes 50-entry pages of a scope of 5,000
// entries (50 boards of 99 todos) through the tenant's pull service, one
// page per iteration, without HTTP: what a page costs the server in CPU and
// allocations from the statement to the response bytes. cpu-µs/entry is
// the process's CPU time (getrusage: the page's work, the collector, and
// on SQLite the database) per entry, which a busy machine disturbs less
// than the wall time.
//
//	go test -run=^$ -bench=PullPage -benchmem -benchtime=2000x ./core/httpapi
func BenchmarkPullPage(b *testing.B) {
	for _, db := range storetest.Databases(b) {
		b.Run("db="+db.Name, func(b *testing.B) {
			e := newEnv(b, db)
			sub := "bench-page"
			ok(b, e.push(b, "acme", sub, ev("", "User", "create", user(sub))))
			for i := 0; i < 50; i++ {
				events := make([]map[string]any, 0, 100)
				bid := fmt.Sprintf("bp-%d", i)
				events = append(events, ev("", "Board", "create", board(bid, sub, "b")))
				for k := 0; k < 99; k++ {
					events = append(events, ev("", "Todo", "create", todo(fmt.Sprintf("%s-%d", bid, k), bid, "t")))
				}
				ok(b, e.push(b, "acme", sub, events...))
			}
			svc := e.reg.Get("acme").Pull
			ctx := context.Background()
			limit := 50
			var buf []byte
			req := pull.Request{Limit: &limit}
			entries := 0
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; i < b.N; i++ {
				resp, err := svc.PullJSON(ctx, sub, nil, req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.Len() == 0 {
					req = pull.Request{Limit: &limit} // wrap around
					continue
				}
				entries += resp.Len()
				buf = resp.AppendJSON(buf[:0])
				resp.Release()
				req = pull.Request{Limit: &limit, LastChangelogID: resp.Cursor}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1000/float64(max(entries, 1)), "µs/entry")
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/1000/float64(max(entries, 1)), "cpu-µs/entry")
		})
	}
}
