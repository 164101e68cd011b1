package push

import (
	"encoding/json"
	"fmt"

	"github.com/syncplane/syncplane/core/schema"
)

// keyOf reads just the primary key fields from a delete payload that does
// not validate as a whole record.
func keyOf(m *schema.Model, payload json.RawMessage) ([]any, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("payload must be an object holding the record's key")
	}
	parts := make([]json.RawMessage, len(m.PrimaryKey))
	for i, f := range m.PrimaryKey {
		v, ok := obj[f]
		if !ok {
			return nil, fmt.Errorf("payload has no key field %q", f)
		}
		parts[i] = v
	}
	keyPath, _ := json.Marshal(parts)
	return m.ValidateKey(keyPath)
}

// keyRecord is a record holding only the primary key.
func keyRecord(m *schema.Model, pk []any) schema.Record {
	r := schema.Record{}
	for i, f := range m.PrimaryKey {
		r[f] = pk[i]
	}
	return r
}
