package schema

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const validateSrc = `
enum Role {
  ADMIN
  MEMBER
}
model Everything {
  id   Int      @id @default(autoincrement())
  s    String
  i    Int
  f    Float
  b    Boolean
  d    DateTime
  j    Json
  by   Bytes
  bi   BigInt
  dec  Decimal
  role Role     @default(MEMBER)
  tags String[]
  nums Int[]    @default([1, 2])
  opt  String?
  cnt  Int      @default(7)
}
model Pair {
  a Int
  b String
  @@id([a, b])
}
model Gen {
  id       String   @id @default(uuid())
  c        String   @default(cuid())
  at       DateTime @default(now())
  up       DateTime @updatedAt
  other    String   @default(dbgenerated("x()"))
  optOther String?  @default(dbgenerated("x()"))
}
`

// basePayload is a valid Everything payload with every field present.
func basePayload() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"id": json.RawMessage(`1`), "s": json.RawMessage(`"x"`), "i": json.RawMessage(`2`),
		"f": json.RawMessage(`2.5`), "b": json.RawMessage(`true`), "d": json.RawMessage(`"2026-11-25T10:00:00Z"`),
		"j": json.RawMessage(`{"k": [1, 2]}`), "by": json.RawMessage(`"aGk="`), "bi": json.RawMessage(`3`),
		"dec": json.RawMessage(`"1.5"`), "role": json.RawMessage(`"ADMIN"`), "tags": json.RawMessage(`["a"]`),
		"nums": json.RawMessage(`[3]`), "opt": json.RawMessage(`"o"`), "cnt": json.RawMessage(`4`),
	}
}

func marshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateTypes(t *testing.T) {
	t.Parallel()
	m := mustParse(t, validateSrc).Model("Everything")
	tests := []struct {
		field, value string
		want         any
		wantErr      string
	}{
		{field: "s", value: `"héllo"`, want: "héllo"},
		{field: "s", value: `1`, wantErr: `field "s": must be a string`},
		{field: "s", value: `"a\u0000b"`, wantErr: `field "s": must not contain the NUL character (U+0000)`},
		{field: "s", value: `"a\\u0000b"`, want: `a\u0000b`},
		{field: "i", value: `-42`, want: int64(-42)},
		{field: "i", value: `1.0`, want: int64(1)},
		{field: "i", value: `1e3`, want: int64(1000)},
		{field: "i", value: `9223372036854775807`, want: int64(9223372036854775807)},
		{field: "i", value: `9223372036854775808`, wantErr: `field "i": must be an integer`},
		{field: "i", value: `1.5`, wantErr: `field "i": must be an integer`},
		{field: "i", value: `1e400`, wantErr: `field "i": must be an integer`},
		{field: "i", value: `"1"`, wantErr: `field "i": must be an integer`},
		{field: "bi", value: `"-9007199254740993"`, want: int64(-9007199254740993)},
		{field: "bi", value: `9007199254740993`, want: int64(9007199254740993)},
		{field: "bi", value: `"12a"`, wantErr: `field "bi": must be an integer (a number or a string of digits) in the 64-bit range`},
		{field: "bi", value: `"99999999999999999999"`, wantErr: `field "bi": must be an integer (a number or a string of digits) in the 64-bit range`},
		{field: "f", value: `1`, want: 1.0},
		{field: "f", value: `-1.25e-3`, want: -0.00125},
		{field: "f", value: `1e400`, wantErr: `field "f": must be a number`},
		{field: "f", value: `"1"`, wantErr: `field "f": must be a number`},
		{field: "b", value: `false`, want: false},
		{field: "b", value: `0`, wantErr: `field "b": must be a boolean`},
		{field: "d", value: `"2026-11-25T10:20:30.123456Z"`, want: time.Date(2026, 11, 25, 10, 20, 30, 123e6, time.UTC)},
		{field: "d", value: `"2026-11-25T10:20:30+02:00"`, want: time.Date(2026, 11, 25, 8, 20, 30, 0, time.UTC)},
		{field: "d", value: `"2026-11-25"`, want: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)},
		{field: "d", value: `"2026-11-25 10:20:30"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"2026-13-01"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"x"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `true`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `1764064800000`, want: time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC)},
		{field: "d", value: `1764064800123.0`, want: time.Date(2025, 11, 25, 10, 0, 0, 123e6, time.UTC)},
		{field: "d", value: `0`, want: time.Unix(0, 0).UTC()},
		{field: "d", value: `-1`, want: time.Date(1969, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{field: "d", value: `1e3`, want: time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)},
		{field: "d", value: `-62135596800000`, want: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{field: "d", value: `253402300799999`, want: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{field: "d", value: `-62135596800001`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `253402300800000`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `8.64e15`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `-8640000000000000`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `8640000000000001`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `-8640000000000001`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `1.5`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `1e300`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `1e400`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"1764064800000"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"0001-01-01T00:00:00.000Z"`, want: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{field: "d", value: `"9999-12-31T23:59:59.999Z"`, want: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{field: "d", value: `"9999-12-31T23:59:59.9999Z"`, want: time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)},
		{field: "d", value: `"0001-01-01"`, want: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{field: "d", value: `"9999-12-31"`, want: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{field: "d", value: `"0000-12-31T23:59:59.999Z"`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `"0000-01-01"`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `"0001-01-01T00:30:00+01:00"`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `"9999-12-31T23:30:00-01:00"`, wantErr: `field "d": must be a date between the years 0001 and 9999`},
		{field: "d", value: `"+275760-09-13T00:00:00.000Z"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"-271821-04-20"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"-000004-02-29T12:00:00.5Z"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"+010000-01-01T00:00:00.000Z"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"+002026-11-25T10:00:00Z"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "d", value: `"10000-01-01T00:00:00Z"`, wantErr: `field "d": must be an ISO-8601 date-time string or an integer number of milliseconds since the Unix epoch`},
		{field: "j", value: `{"b": 1, "a": [true, null]}`, want: json.RawMessage(`{"b":1,"a":[true,null]}`)},
		{field: "j", value: `"text"`, want: json.RawMessage(`"text"`)},
		{field: "j", value: `{"k": ["\u0000"]}`, wantErr: `field "j": must not contain the NUL character (U+0000)`},
		{field: "j", value: `{"\u0000": 1}`, wantErr: `field "j": must not contain the NUL character (U+0000)`},
		{field: "j", value: `["\\\u0000"]`, wantErr: `field "j": must not contain the NUL character (U+0000)`},
		{field: "j", value: `["\\u0000"]`, want: json.RawMessage(`["\\u0000"]`)},
		{field: "by", value: `"AAEC"`, want: []byte{0, 1, 2}},
		{field: "by", value: `"AAE"`, wantErr: `field "by": must be a base64 string`},
		{field: "by", value: `[0, 1]`, wantErr: `field "by": must be a base64 string`},
		{field: "dec", value: `12.50`, want: "12.50"},
		{field: "dec", value: `1e2`, want: "100"},
		{field: "dec", value: `"+3.14"`, want: "3.14"},
		{field: "dec", value: `"-0.5"`, want: "-0.5"},
		{field: "dec", value: `"1e2"`, wantErr: `field "dec": must be a decimal number or a string holding one`},
		{field: "dec", value: `".5"`, wantErr: `field "dec": must be a decimal number or a string holding one`},
		{field: "role", value: `"MEMBER"`, want: "MEMBER"},
		{field: "role", value: `"member"`, wantErr: `field "role": must be one of ADMIN, MEMBER`},
		{field: "tags", value: `[]`, want: []any{}},
		{field: "tags", value: `["a", "b"]`, want: []any{"a", "b"}},
		{field: "tags", value: `"a"`, wantErr: `field "tags": must be an array of String`},
		{field: "tags", value: `["a", null]`, wantErr: `field "tags": element 1 must not be null`},
		{field: "nums", value: `[1, 2.5]`, wantErr: `field "nums": element 1 must be an integer`},
		{field: "tags", value: `null`, wantErr: `field "tags" must not be null`},
		{field: "opt", value: `null`, want: nil},
		{field: "s", value: `null`, wantErr: `field "s" must not be null`},
	}
	for _, tt := range tests {
		t.Run("field="+tt.field+"/value="+tt.value, func(t *testing.T) {
			t.Parallel()
			p := basePayload()
			p[tt.field] = json.RawMessage(tt.value)
			rec, err := m.Validate(marshal(t, p))
			if tt.wantErr != "" {
				var verr *ValidationError
				if !errors.As(err, &verr) || err.Error() != tt.wantErr {
					t.Fatalf("Validate error = %v, want *ValidationError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, rec[tt.field]); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateObject(t *testing.T) {
	t.Parallel()
	s := mustParse(t, validateSrc)
	kanban := mustLoad(t, "testdata/kanban.prisma")
	tests := map[string]struct {
		model   *Model
		payload string
		want    Record
		wantErr string
	}{
		"case=all_fields": {
			model: s.Model("Everything"),
			payload: `{"id":9,"s":"","i":0,"f":0,"b":false,"d":"2026-01-01","j":[],"by":"","bi":"0","dec":0,` +
				`"role":"MEMBER","tags":[],"nums":[1,2],"opt":null,"cnt":7}`,
			want: Record{
				"id": int64(9), "s": "", "i": int64(0), "f": 0.0, "b": false, "d": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				"j": json.RawMessage("[]"), "by": []byte{}, "bi": int64(0), "dec": "0", "role": "MEMBER",
				"tags": []any{}, "nums": []any{int64(1), int64(2)}, "opt": nil, "cnt": int64(7),
			},
		},
		"case=kanban_user_nulls_and_epoch": {
			model: kanban.Model("User"),
			payload: `{"id":"u1","name":"n","email":"e@x","emailVerified":false,"image":null,` +
				`"createdAt":1764064800000,"updatedAt":"2026-11-25T10:00:00Z","isAnonymous":null}`,
			want: Record{
				"id": "u1", "name": "n", "email": "e@x", "emailVerified": false, "image": nil,
				"createdAt": time.Date(2025, 11, 25, 10, 0, 0, 0, time.UTC),
				"updatedAt": time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), "isAnonymous": nil,
			},
		},
		"case=missing_optional": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","title":"x","isCompleted":false,"createdAt":"2026-11-25T10:00:00Z","boardId":"b1"}`,
			wantErr: `missing required field "description"`,
		},
		"case=missing_default_literal": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","title":"x","description":null,"createdAt":"2026-11-25T10:00:00Z","boardId":"b1"}`,
			wantErr: `missing required field "isCompleted"`,
		},
		"case=missing_default_now": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","title":"x","description":null,"isCompleted":false,"boardId":"b1"}`,
			wantErr: `missing required field "createdAt"`,
		},
		"case=missing_default_uuid": {
			model:   kanban.Model("Board"),
			payload: `{"name":"b","createdAt":"2026-11-25T10:00:00Z","userId":"u1"}`,
			wantErr: `missing required field "id"`,
		},
		"case=missing_updated_at": {
			model: kanban.Model("User"),
			payload: `{"id":"u1","name":"n","email":"e@x","emailVerified":false,"image":null,` +
				`"createdAt":"2026-11-25T10:00:00Z","isAnonymous":null}`,
			wantErr: `missing required field "updatedAt"`,
		},
		"case=missing_optional_last": {
			model: kanban.Model("User"),
			payload: `{"id":"u1","name":"n","email":"e@x","emailVerified":false,"image":null,` +
				`"createdAt":"2026-11-25T10:00:00Z","updatedAt":"2026-11-25T10:00:00Z"}`,
			wantErr: `missing required field "isAnonymous"`,
		},
		"case=kanban_todo": {
			model:   kanban.Model("Todo"),
			payload: ` {"id":"t1","title":"Buy milk","description":null,"isCompleted":true,"createdAt":"2026-11-25T10:00:00.000Z","boardId":"b1"} `,
			want: Record{
				"id": "t1", "title": "Buy milk", "description": nil, "isCompleted": true,
				"createdAt": time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), "boardId": "b1",
			},
		},
		"case=autoincrement_missing": {
			model:   s.Model("Everything"),
			payload: `{"s":"","i":0,"f":0,"b":false,"d":"2026-01-01","j":1,"by":"","bi":0,"dec":0,"tags":[]}`,
			wantErr: `missing required field "id"`,
		},
		"case=missing_required": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","boardId":"b1"}`,
			wantErr: `missing required field "title"`,
		},
		"case=unknown_sorted_first": {
			model:   kanban.Model("Todo"),
			payload: `{"zz":1,"aa":2}`,
			wantErr: `unknown field "aa"`,
		},
		"case=relation_field": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","title":"x","boardId":"b1","board":{"id":"b1"}}`,
			wantErr: `unknown field "board"`,
		},
		"case=back_relation": {
			model:   kanban.Model("User"),
			payload: `{"id":"u","name":"n","email":"e","boards":[]}`,
			wantErr: `unknown field "boards"`,
		},
		"case=null_required": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","title":null,"boardId":"b1"}`,
			wantErr: `field "title" must not be null`,
		},
		"case=null_with_default": {
			model:   kanban.Model("Todo"),
			payload: `{"id":"t1","title":"x","description":null,"boardId":"b1","isCompleted":null}`,
			wantErr: `field "isCompleted" must not be null`,
		},
		"case=array":     {model: kanban.Model("Todo"), payload: `[]`, wantErr: "payload must be a JSON object"},
		"case=null":      {model: kanban.Model("Todo"), payload: `null`, wantErr: "payload must be a JSON object"},
		"case=empty":     {model: kanban.Model("Todo"), payload: ``, wantErr: "payload must be a JSON object"},
		"case=truncated": {model: kanban.Model("Todo"), payload: `{"id":"t1"`, wantErr: "payload must be a JSON object"},
		"case=trailing":  {model: kanban.Model("Todo"), payload: `{"id":"t1"} {}`, wantErr: "payload must be a JSON object"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec, err := tt.model.Validate(json.RawMessage(tt.payload))
			if tt.wantErr != "" {
				var verr *ValidationError
				if !errors.As(err, &verr) || err.Error() != tt.wantErr {
					t.Fatalf("Validate error = %v, want *ValidationError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, rec); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateEveryFieldRequired checks, for every column field of every
// model, that a complete payload is accepted and that the same payload
// without that field is rejected, whatever the field's @default,
// @updatedAt or optionality: prisma-idb's z.strictObject requires every
// key, and optional fields are .nullable(), not .optional().
func TestValidateEveryFieldRequired(t *testing.T) {
	t.Parallel()
	s := mustParse(t, validateSrc)
	payloads := map[string]map[string]json.RawMessage{
		"Everything": basePayload(),
		"Gen": {
			"id": json.RawMessage(`"7f1c0d7e-0000-4000-8000-000000000000"`), "c": json.RawMessage(`"cabc"`),
			"at": json.RawMessage(`1764064800000`), "up": json.RawMessage(`"2026-11-25T10:00:00Z"`),
			"other": json.RawMessage(`"o"`), "optOther": json.RawMessage(`null`),
		},
	}
	for name, full := range payloads {
		m := s.Model(name)
		if _, err := m.Validate(marshal(t, full)); err != nil {
			t.Fatalf("model %s: complete payload: %v", name, err)
		}
		for _, f := range m.Fields {
			t.Run("model="+name+"/field="+f.Name, func(t *testing.T) {
				t.Parallel()
				p := make(map[string]json.RawMessage, len(full))
				for k, v := range full {
					if k != f.Name {
						p[k] = v
					}
				}
				_, err := m.Validate(marshal(t, p))
				want := `missing required field "` + f.Name + `"`
				var verr *ValidationError
				if !errors.As(err, &verr) || err.Error() != want || verr.Field != "" {
					t.Errorf("Validate error = %#v, want *ValidationError %q", err, want)
				}
			})
		}
	}
	// Null is accepted for optional fields only, with or without a @default.
	p := payloads["Gen"]
	p["optOther"] = json.RawMessage(`null`)
	if rec, err := s.Model("Gen").Validate(marshal(t, p)); err != nil || rec["optOther"] != nil {
		t.Errorf("optOther null: rec = %v, err = %v", rec, err)
	}
	for _, field := range []string{"id", "c", "at", "up", "other"} {
		q := maps.Clone(payloads["Gen"])
		q[field] = json.RawMessage(`null`)
		want := `field "` + field + `" must not be null`
		if _, err := s.Model("Gen").Validate(marshal(t, q)); err == nil || err.Error() != want {
			t.Errorf("%s null: err = %v, want %q", field, err, want)
		}
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	s := mustParse(t, validateSrc)
	user := mustLoad(t, "testdata/kanban.prisma").Model("User")
	tests := map[string]struct {
		model   *Model
		key     string
		want    []any
		wantErr string
	}{
		"model=User/key=ok":        {model: user, key: `["u1"]`, want: []any{"u1"}},
		"model=Pair/key=ok":        {model: s.Model("Pair"), key: `[1, "b"]`, want: []any{int64(1), "b"}},
		"model=Pair/key=short":     {model: s.Model("Pair"), key: `[1]`, wantErr: "key path must be a JSON array of 2 value(s)"},
		"model=User/key=not_array": {model: user, key: `"u1"`, wantErr: "key path must be a JSON array of 1 value(s)"},
		"model=User/key=null":      {model: user, key: `null`, wantErr: "key path must be a JSON array of 1 value(s)"},
		"model=User/key=null_elem": {model: user, key: `[null]`, wantErr: `field "id" must not be null`},
		"model=Pair/key=bad_type":  {model: s.Model("Pair"), key: `["1", "b"]`, wantErr: `field "a": must be an integer`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.model.ValidateKey(json.RawMessage(tt.key))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ValidateKey error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("key (-want +got):\n%s", diff)
			}
			rec := Record{}
			for i, name := range tt.model.PrimaryKey {
				rec[name] = got[i]
			}
			if diff := cmp.Diff(tt.want, tt.model.Key(rec)); diff != "" {
				t.Errorf("Key (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarshalRecord(t *testing.T) {
	t.Parallel()
	m := mustParse(t, validateSrc).Model("Everything")
	payload := `{"id":1,"s":"x\"y","i":-2,"f":2.5,"b":true,"d":"2026-11-25T10:00:00.1+01:00","j":{"k": [1, 2]},` +
		`"by":"aGk=","bi":"9007199254740993","dec":1.50,"role":"ADMIN","tags":["a","b"],"nums":[],"opt":null,"cnt":4}`
	rec, err := m.Validate(json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":1,"s":"x\"y","i":-2,"f":2.5,"b":true,"d":"2026-11-25T09:00:00.100Z","j":{"k":[1,2]},` +
		`"by":"aGk=","bi":9007199254740993,"dec":"1.50","role":"ADMIN","tags":["a","b"],"nums":[],"opt":null,"cnt":4}`
	if string(got) != want {
		t.Errorf("MarshalRecord =\n%s\nwant\n%s", got, want)
	}
	again, err := m.Validate(got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, again); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ in, want string }{
		{in: `-62135596800000`, want: `"0001-01-01T00:00:00.000Z"`},
		{in: `253402300799999`, want: `"9999-12-31T23:59:59.999Z"`},
		{in: `"0001-01-01"`, want: `"0001-01-01T00:00:00.000Z"`},
		{in: `"9999-12-31T23:59:59.999Z"`, want: `"9999-12-31T23:59:59.999Z"`},
		{in: `1764064800123`, want: `"2025-11-25T10:00:00.123Z"`},
	} {
		p := basePayload()
		p["d"] = json.RawMessage(tt.in)
		rec, err := m.Validate(marshal(t, p))
		if err != nil {
			t.Fatalf("d=%s: %v", tt.in, err)
		}
		out, err := m.MarshalRecord(rec)
		if err != nil {
			t.Fatalf("d=%s: MarshalRecord: %v", tt.in, err)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatal(err)
		}
		if string(obj["d"]) != tt.want {
			t.Errorf("d=%s: written as %s, want %s", tt.in, obj["d"], tt.want)
		}
		again, err := m.Validate(out)
		if err != nil {
			t.Fatalf("d=%s: re-validating %s: %v", tt.in, out, err)
		}
		if !again["d"].(time.Time).Equal(rec["d"].(time.Time)) {
			t.Errorf("d=%s: round trip gives %v, want %v", tt.in, again["d"], rec["d"])
		}
	}

	for name, r := range map[string]Record{
		"case=unknown_key":       {"nope": 1},
		"case=wrong_type":        {"i": "1"},
		"case=wrong_list":        {"tags": []string{"a"}},
		"case=bad_json":          {"j": json.RawMessage("{")},
		"case=year_0":            {"d": time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC)},
		"case=year_10000":        {"d": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"case=year_10000_in_utc": {"d": time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600))},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := m.MarshalRecord(r); err == nil {
				t.Errorf("MarshalRecord(%v) succeeded, want error", r)
			}
		})
	}
}

func TestValidateFilter(t *testing.T) {
	t.Parallel()
	board := mustLoad(t, "testdata/kanban.prisma").Model("Board")
	fields, vals, err := board.ValidateFilter(json.RawMessage(`{"userId":"u1","name":"Q4"}`))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"name", "userId"}, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"Q4", "u1"}, vals); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	for filter, want := range map[string]string{
		`{"user":"u1"}`:   `unknown field "user"`,
		`{"name":7}`:      `field "name": must be a string`,
		`{"userId":null}`: `field "userId": filtering on null is not supported`,
		`[1]`:             "payload must be a JSON object",
	} {
		if _, _, err := board.ValidateFilter(json.RawMessage(filter)); err == nil || err.Error() != want {
			t.Errorf("ValidateFilter(%s) = %v, want %q", filter, err, want)
		}
	}
}

// AppendFloat writes a float64 exactly as encoding/json does (records are
// written without it, see MarshalRecord).
func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.30000000000000004, 1.5, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 123456789.125,
		math.MaxFloat64, math.SmallestNonzeroFloat64, -math.MaxFloat64, 1e-9, 5e-324, 1.7e308}
	r := rand.New(rand.NewPCG(1, 2))
	for len(floats) < 20000 {
		if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			floats = append(floats, f)
		}
	}
	for _, f := range floats {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendFloat(nil, f)
		if err != nil || string(got) != string(want) {
			t.Fatalf("AppendFloat(%v) = %s, %v; encoding/json writes %s", f, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := AppendFloat(nil, f); err == nil {
			t.Errorf("AppendFloat(%v) succeeded", f)
		}
	}
}

// DecodeRecord reads back what MarshalRecord writes, nulls included where
// Validate would refuse them.
func TestDecodeRecord(t *testing.T) {
	t.Parallel()
	m := mustParse(t, validateSrc).Model("Everything")
	payload := `{"id":1,"s":"é \"q\"","i":-2,"f":2.5,"b":true,"d":"2026-11-25T10:00:00.1+01:00","j":{"k": [1, 2]},` +
		`"by":"aGk=","bi":"9007199254740993","dec":1.50,"role":"ADMIN","tags":["a","b"],"nums":[],"opt":null,"cnt":4}`
	rec, err := m.Validate(json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.DecodeRecord(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rec, got); diff != "" {
		t.Errorf("DecodeRecord(MarshalRecord(r)) (-r +got):\n%s", diff)
	}
	nulls := Record{}
	for _, f := range m.Fields {
		nulls[f.Name] = nil
	}
	if got, err := m.DecodeRecord(json.RawMessage(`{"s":null}`)); err != nil || !maps.Equal(got, nulls) {
		t.Errorf("DecodeRecord of nulls = %v, %v; want every field nil", got, err)
	}
	for _, bad := range []string{`[]`, `{"nope":1}`, `{"i":"x"}`} {
		if _, err := m.DecodeRecord(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeRecord(%s) succeeded", bad)
		}
	}
}

// AppendTime writes what AppendFormat does with TimeLayout, in quotes.
func TestAppendTime(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	lo, hi := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC).UnixMicro()
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 2, 29, 13, 45, 6, 789654321, time.FixedZone("", 5*3600+1800)), time.Unix(0, 0),
	}
	for len(times) < 20000 {
		times = append(times, time.UnixMicro(lo+r.Int64N(hi-lo)))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(TimeLayout) + `"`
		if got, err := AppendTime(nil, tm); err != nil || string(got) != want {
			t.Fatalf("AppendTime(%v) = %s, %v; want %s", tm, got, err, want)
		}
	}
	for _, tm := range []time.Time{time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if _, err := AppendTime(nil, tm); err == nil {
			t.Errorf("AppendTime(%v) succeeded", tm)
		}
	}
}
