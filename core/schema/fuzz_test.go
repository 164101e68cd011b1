package schema

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

func FuzzParse(f *testing.F) {
	kanban, err := os.ReadFile("testdata/kanban.prisma")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(kanban), featuresSrc, validateSrc, multiPathSrc,
		"", "model", "model A {", "model A { id String @id @default( }",
		"enum E { A B }\nmodel M { id Int @id\n e E @default(C) }",
		"/* unterminated", "model M { id String @id\n x Unsupported(\"p\") }",
		"model M { id String @id\n m M? @relation(fields: [x], references: [id])\n x String? }",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse(File{Name: "fuzz.prisma", Src: []byte(src)})
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of schema and error", s, err)
		}
		var list ErrorList
		if err != nil && (!errors.As(err, &list) || len(list) == 0) {
			t.Fatalf("error %v (%T) is not a non-empty ErrorList", err, err)
		}
		if s != nil && len(s.Models) > 0 {
			// Whatever parsed must be usable downstream.
			_, _ = BuildOwnership(s, s.Models[0].Name, nil)
			for _, m := range s.Models {
				_, _ = m.Validate(json.RawMessage(`{}`))
			}
		}
	})
}

func FuzzValidate(f *testing.F) {
	s := mustLoad(f, "testdata/kanban.prisma")
	models := []*Model{s.Model("Todo"), s.Model("User")}
	for _, seed := range []string{
		`{"id":"t1","title":"x","boardId":"b1"}`,
		`{"id":"u1","name":"n","email":"e@x","updatedAt":"2026-11-25T10:00:00Z","image":null}`,
		`{"id":1}`, `[]`, `null`, `{"createdAt":"2026-02-30"}`, `{"isCompleted":1e999}`,
		`{"id":"t1","title":"x","boardId":"b1","description":"\ud800"}`,
		`{"id":"t1","title":"x","description":null,"isCompleted":false,"createdAt":"2026-11-25T10:00:00Z","boardId":"b1"}`,
		`{"id":"t1","title":"x","description":"d","isCompleted":true,"createdAt":-8640000000000000,"boardId":"b1"}`,
		`{"id":"u1","name":"n","email":"e@x","emailVerified":false,"image":null,"createdAt":1764064800000,` +
			`"updatedAt":"+275760-09-13T00:00:00.000Z","isAnonymous":null}`,
		`{"id":"u1","name":"n","email":"e@x","emailVerified":true,"image":"i","createdAt":"-000004-02-29T23:00:00-05:00",` +
			`"updatedAt":1.5,"isAnonymous":true}`,
		`{"id":"t1","title":"x","description":null,"isCompleted":false,"createdAt":"0001-01-01T00:00:00.000Z","boardId":"b1"}`,
		`{"id":"t1","title":"x","description":null,"isCompleted":false,"createdAt":"9999-12-31T23:59:59.999Z","boardId":"b1"}`,
		`{"id":"t1","title":"x","description":null,"isCompleted":false,"createdAt":253402300800000,"boardId":"b1"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		for _, m := range models {
			rec, err := m.Validate(json.RawMessage(payload))
			if err != nil {
				var verr *ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
				}
				continue
			}
			out, err := m.MarshalRecord(rec)
			if err != nil {
				t.Fatalf("MarshalRecord of a validated record: %v", err)
			}
			if _, err := m.Validate(out); err != nil {
				t.Fatalf("re-validating %s: %v", out, err)
			}
		}
	})
}
