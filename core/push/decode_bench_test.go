package push_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/testkit"
)

// kanbanBody is a 100-event batch like the ones core/httpapi's tests push:
// one board and 99 todos on it, with the client's bookkeeping fields.
func kanbanBody(tb testing.TB) []byte {
	tb.Helper()
	events := []map[string]any{testkit.OutboxEvent("evt-board", "Board", "create", testkit.Board("b1", "u1", "Q4"))}
	for i := range 99 {
		events = append(events, testkit.OutboxEvent(fmt.Sprintf("evt-%d", i), "Todo", "create",
			testkit.Todo(fmt.Sprintf("t%d", i), "b1", fmt.Sprintf("Todo %d", i))))
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
