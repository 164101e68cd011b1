package pull

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fast decoder takes what it can read exactly as encoding/json does,
// and leaves the rest to the full decoder.
func TestDecodeRequestFast(t *testing.T) {
	t.Parallel()
	id := "0193a5f2-7c1e-7d4b-8a2f-0123456789ab"
	for body, fast := range map[string]bool{
		`{}`: true, ` {"limit": 50} `: true, `{"limit":50,"lastChangelogId":"` + id + `"}`: true,
		`{"scopeKey":"u\"1\u00e9","waitMs":0}`: true, `{"limit":null,"scopeKey":null}`: true,
		`{"limit":5,"limit":7}`: true, `{"limit":7,"limit":null}`: true, `{"limit":-0}`: true,
		`{"limit":123456789012345}`:  true,
		`{"limit":1234567890123456}`: false, `{"limit":1.5}`: false, `{"limit":1e2}`: false, `{"limit":"5"}`: false,
		`{"Limit":5}`: false, `{"\u006cimit":5}`: false, `{"cursor":"x"}`: false, `{"scopeKey":1}`: false,
		`{} {}`: false, `[]`: false, `null`: false, `{"limit":5}]`: false,
	} {
		got, ok := decodeRequestFast([]byte(body))
		if ok != fast {
			t.Errorf("decodeRequestFast(%s) ok = %v, want %v", body, ok, fast)
			continue
		}
		if !ok {
			continue
		}
		var want Request
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("decodeRequestFast(%s) (-encoding/json +fast):\n%s", body, diff)
		}
	}
}
