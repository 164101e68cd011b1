package schema

import (
	"encoding/json"
	"testing"
)

func BenchmarkValidate(b *testing.B) {
	kanban := mustLoad(b, "testdata/kanban.prisma")
	every := mustParse(b, validateSrc).Model("Everything")
	cases := []struct {
		name    string
		model   *Model
		payload string
	}{
		{"Todo", kanban.Model("Todo"),
			`{"id":"3f2b8c1e-9a4d-4e2b-8f7a-1c2d3e4f5a6b","title":"Buy milk","description":"two litres, semi-skimmed",` +
				`"isCompleted":false,"createdAt":"2026-11-25T10:00:00.000Z","boardId":"b1c2d3e4-0000-4000-8000-000000000001"}`},
		{"User", kanban.Model("User"),
			`{"id":"u1","name":"Ada Lovelace","email":"ada@example.com","emailVerified":true,"image":null,` +
				`"createdAt":1764064800000,"updatedAt":"2026-11-25T10:00:00.000Z","isAnonymous":null}`},
		{"Everything", every,
			`{"id":9,"s":"héllo \"quoted\"","i":-42,"f":2.5,"b":true,"d":"2026-11-25T10:00:00Z","j":{"k": [1, 2], "s": "x y"},` +
				`"by":"aGVsbG8gd29ybGQ=","bi":"9007199254740993","dec":"12.345","role":"ADMIN","tags":["a","b","c"],` +
				`"nums":[1,2,3],"opt":null,"cnt":7}`},
	}
	for _, c := range cases {
		if _, err := c.model.Validate(json.RawMessage(c.payload)); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
		b.Run(c.name, func(b *testing.B) {
			payload := json.RawMessage(c.payload)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := c.model.Validate(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
