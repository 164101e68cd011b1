package schema

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzValidateEquivalent checks that Validate, and the conversion of
// single values shared with ValidateKey and ValidateFilter, behave exactly
// as the original implementation (refValidate, refValue): the same
// records, the same errors.
func FuzzValidateEquivalent(f *testing.F) {
	kanban := mustLoad(f, "testdata/kanban.prisma")
	s := mustParse(f, validateSrc)
	models := []*Model{kanban.Model("Todo"), kanban.Model("User"), s.Model("Everything"), s.Model("Pair"), s.Model("Gen")}
	for _, seed := range []string{
		`{"id":"t1","title":"x","boardId":"b1"}`,
		`{"id":"t1","title":"x","description":null,"isCompleted":false,"createdAt":"2026-11-25T10:00:00Z","boardId":"b1"}`,
		` { "id" : "t1" , "title":"x\u00e9\ud800","description" : "d\n","isCompleted":true,"createdAt":-8640000000000000,"boardId":"b1" } `,
		`{"id":"t1","\u0074itle":"x","description":null,"isCompleted":false,"createdAt":"2026-11-25","boardId":"b1","id":"t2"}`,
		"{\"id\":\"t\xff1\",\"title\":\"x\",\"description\":null,\"isCompleted\":false,\"createdAt\":1e3,\"boardId\":\"b1\"}",
		`{"id":"u1","name":"n","email":"e@x","emailVerified":false,"image":null,"createdAt":1764064800000,` +
			`"updatedAt":"+275760-09-13T00:00:00.000Z","isAnonymous":null}`,
		`{"id":9,"s":"","i":0,"f":0,"b":false,"d":"2026-01-01","j":[],"by":"","bi":"0","dec":0,` +
			`"role":"MEMBER","tags":[],"nums":[1,2],"opt":null,"cnt":7}`,
		`{"id":-0,"s":"a\"b","i":1.0,"f":1e400,"b":true,"d":999999999999999,"j":{ "k" : [1, "a b", {}] },"by":"aGk=","bi":"-9223372036854775808",` +
			`"dec":1.50,"role":"ADMIN","tags":[ "a" , "b" ],"nums":[1e3, -2, 9223372036854775807],"opt":"o","cnt":1234567890123456}`,
		`{"id":1,"s":"","i":9223372036854775808,"f":0,"b":false,"d":"2026-01-01","j":null,"by":"","bi":"0","dec":"+1","role":"X","tags":[null],"nums":[1.5],"opt":null,"cnt":7}`,
		`{"a":1,"b":"x"}`, `{"b":"x","a":1,"zz":2,"aa":3}`, `{}`, `[]`, `null`, `1`, ``, `{"a":1} x`, `{"a":1}  `,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		for _, m := range models {
			got, gotErr := m.Validate(json.RawMessage(payload))
			want, wantErr := refValidate(m, json.RawMessage(payload))
			compare(t, m.Name+".Validate", got, gotErr, want, wantErr)
			if json.Valid([]byte(payload)) { // what ValidateValid may assume
				got, gotErr = m.ValidateValid(json.RawMessage(payload))
				compare(t, m.Name+".ValidateValid", got, gotErr, want, wantErr)
			}
		}
		// Single values, as ValidateKey and ValidateFilter pass them.
		if !json.Valid([]byte(payload)) || isNull([]byte(payload)) {
			return
		}
		for _, m := range models {
			for _, fld := range m.Fields {
				got, gotErr := fld.value(json.RawMessage(payload))
				want, wantErr := refValue(fld, json.RawMessage(payload))
				compare(t, m.Name+"."+fld.Name+".value", got, gotErr, want, wantErr)
			}
		}
	})
}

func compare(t *testing.T, what string, got any, gotErr error, want any, wantErr error) {
	t.Helper()
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%s: error %v, want %v", what, gotErr, wantErr)
	}
	if gotErr != nil {
		var g, w *ValidationError
		if errors.As(gotErr, &g) != errors.As(wantErr, &w) || g != nil && *g != *w {
			t.Fatalf("%s: error %#v, want %#v", what, gotErr, wantErr)
		}
		return
	}
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("%s: (-want +got)\n%s", what, cmp.Diff(want, got))
	}
}

// normalize drops the capacity differences DeepEqual does not see anyway
// and turns a Record into a plain map so that both sides compare alike.
func normalize(v any) any {
	if r, ok := v.(Record); ok {
		return map[string]any(r)
	}
	return v
}
