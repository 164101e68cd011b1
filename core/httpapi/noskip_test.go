package httpapi_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/storetest"
)

// TestNoSkipUnderConcurrentWriters is the stress test of the no-skip
// guarantee: 8 writers push into one scope through two server instances on
// one database while a reader follows the cursor; every acknowledged
// changelog id must be seen exactly once, in increasing order.
func TestNoSkipUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := newEnv(t, db)
		servers := []string{e.url, e.start(t)} // two server processes, one database
		// Three rounds, each in a fresh scope: a broken id allocation (ids
		// taken before the lock) fails a single round about every other run.
		for round := 0; round < 3; round++ {
			noSkipRound(t, e, servers, "acme", fmt.Sprintf("ns-u%d", round), false)
		}
	})
}

// TestNoSkipWithTombstoneRetention is the stress test in a tenant that drops
// expired tombstones and keeps its full history: there every cursor carries
// its reader's start (even a single-scope pull's), and each push also writes
// the history. One round follows the union of the subject's scopes, one its
// scope by scopeKey.
func TestNoSkipWithTombstoneRetention(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		e := auditEnv(t, db)
		servers := []string{e.url, e.start(t)}
		noSkipRound(t, e, servers, "audit", "nr-union", false)
		noSkipRound(t, e, servers, "audit", "nr-scope", true)
	})
}

// noSkipRound runs writers against tenant's scope sub while a reader follows
// the union of sub's scopes (or, with byScope, sub's scope by scopeKey).
func noSkipRound(t *testing.T, e *env, servers []string, tenant, sub string, byScope bool) {
	const (
		writers = 8
		batches = 30
		perPush = 5
	)
	ok(t, e.push(t, tenant, sub, ev("", "User", "create", user(sub)), ev("", "Board", "create", board(sub+"-b", sub, "b"))))

	write := func(w, b int) []string {
		events := make([]map[string]any, perPush)
		for i := range events {
			id := fmt.Sprintf("%s-t-%d-%d-%d", sub, w, b, i)
			events[i] = ev("", "Todo", "create", todo(id, sub+"-b", id))
		}
		var ids []string
		for _, r := range pushRetrying(t, servers[(w+b)%2], tenant, sub, events...) {
			if r.Error != nil {
				t.Errorf("event %s: %+v", r.ID, r.Error)
				continue
			}
			ids = append(ids, *r.AppliedChangelogID)
		}
		return ids
	}
	base := map[string]any{"limit": 7}
	if byScope {
		base["scopeKey"] = sub
	}
	cursor := maps.Clone(base)
	read := func(i int) []string {
		page := pullFrom(t, servers[i%2], tenant, sub, cursor)
		if page.Cursor != nil {
			cursor = maps.Clone(base)
			cursor["lastChangelogId"] = *page.Cursor
		}
		return pageIDs(page)
	}
	acked, order := followWhileWriting(t, writers, batches, write, read)
	seen := map[string]int{}
	for _, id := range order {
		seen[id]++
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged id %s seen %d times", id, seen[id])
		}
	}
	if len(acked) != writers*batches*perPush {
		t.Errorf("%d acknowledged events, want %d", len(acked), writers*batches*perPush)
	}
	for j := 1; j < len(order); j++ {
		if order[j] <= order[j-1] {
			t.Fatalf("reader saw %s after %s", order[j], order[j-1])
		}
	}
	if len(order) != len(acked)+2 {
		t.Errorf("reader saw %d entries, want %d", len(order), len(acked)+2)
	}
}

// pushRetrying is pushTo as a client does it: a 503 (the database was
// busy past its bound, on a loaded machine) is retried, the same events
// again (their ids make it idempotent), a few times.
func pushRetrying(t *testing.T, base, tenantID, sub string, events ...map[string]any) []push.Result {
	t.Helper()
	for attempt := 0; ; attempt++ {
		code, body, _ := post(t, base+"/v1/tenants/"+tenantID+"/push", token(t, tenantID, sub), map[string]any{"events": events})
		if code == http.StatusServiceUnavailable && attempt < 5 {
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
			continue
		}
		if code != http.StatusOK {
			t.Fatalf("push: status %d: %s", code, body)
		}
		var res []push.Result
		must(t, json.Unmarshal(body, &res))
		return res
	}
}

// followWhileWriting runs writers goroutines, each calling write(w, b) for
// b below batches (it returns the changelog ids the push acknowledged),
// while one reader calls read(i) with i counting up (it returns the ids of
// one page); once the writers are done, the reader reads on until a page
// is empty. It returns every acknowledged id and the ids read, in order.
func followWhileWriting(t *testing.T, writers, batches int, write func(w, b int) []string, read func(i int) []string) (acked, order []string) {
	t.Helper()
	ids := make(chan []string, writers*batches)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				ids <- write(w, b)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for i := 0; ; i++ {
		select {
		case <-done:
			for page := read(i); len(page) > 0; page = read(i) {
				order = append(order, page...)
				i++
			}
			close(ids)
			for batch := range ids {
				acked = append(acked, batch...)
			}
			return acked, order
		default:
			order = append(order, read(i)...)
		}
	}
}

// pageIDs are the ids of a page's entries.
func pageIDs(page pull.Response) []string {
	ids := make([]string, len(page.LogsWithRecords))
	for i, l := range page.LogsWithRecords {
		ids[i] = l.ID
	}
	return ids
}
