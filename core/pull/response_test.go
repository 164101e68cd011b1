package pull

import (
	"encoding/json"
	"testing"
)

// Records and key paths are JSON written by encoding/json's rules (the
// schema's encoder, scope.KeyJSON), so the whole page matches byte for byte.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	cursor := `c1.<"&">`
	for _, r := range []*Response{
		{Cursor: nil, LogsWithRecords: []LogWithRecord{}},
		{Cursor: &cursor, LogsWithRecords: []LogWithRecord{
			{ID: "01a", ChangelogID: "01a", Model: "Todo", KeyPath: json.RawMessage(`["t\u003c1\u003e"]`), Operation: "create",
				ScopeKey: "u\"1\u2028", OutboxEventID: "ev\n1", Record: json.RawMessage(`{"id":"t\u003c1\u003e","n":1.5,"ok":true}`)},
			{ID: "01b", ChangelogID: "01b", Model: "Todo", KeyPath: json.RawMessage(`[2]`), Operation: "delete",
				ScopeKey: "u1", OutboxEventID: "ev2", Record: json.RawMessage(`null`)},
		}},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
		}
	}
}
