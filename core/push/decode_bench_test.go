package push_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/syncplane/syncplane/core/push"
)

// kanbanBody is a 100-event batch like the ones core/httpapi's tests push:
// one board and 99 todos on it, with the client's bookkeeping fields.
func kanbanBody(tb testing.TB) []byte {
	tb.Helper()
	const ts = "2026-11-25T10:00:00.000Z"
	ev := func(id, model, op string, payload any) map[string]any {
		return map[string]any{"id": id, "entityType": model, "operation": op, "payload": payload,
			"createdAt": ts, "tries": 0, "lastError": nil, "synced": false,
			"syncedAt": nil, "retryable": true, "lastAttemptedAt": nil}
	}
	events := []map[string]any{ev("evt-board", "Board", "create",
		map[string]any{"id": "b1", "name": "Q4", "createdAt": ts, "userId": "u1"})}
	for i := range 99 {
		events = append(events, ev(fmt.Sprintf("evt-%d", i), "Todo", "create",
			map[string]any{"id": fmt.Sprintf("t%d", i), "title": fmt.Sprintf("Todo %d", i), "description": nil,
				"isCompleted": false, "createdAt": ts, "boardId": "b1"}))
	}
	b, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkDecodeBody(b *testing.B) {
	body := kanbanBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		events, err := push.DecodeBody(body, 100)
		if err != nil || len(events) != 100 {
			b.Fatal(len(events), err)
		}
	}
}
