package store_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/changelog"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
)

// pageEntries makes changelog entries (model, key path, scope) with increasing ids.
func pageEntries(t *testing.T, specs ...[3]string) []changelog.Entry {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	last := ""
	out := make([]changelog.Entry, len(specs))
	for i, s := range specs {
		id, err := changelog.Next(last, now)
		if err != nil {
			t.Fatal(err)
		}
		last = id
		out[i] = changelog.Entry{ID: id, Model: s[0], KeyPath: []byte(s[1]), Operation: changelog.Update, ScopeKey: s[2],
			OutboxEventID: "ev-" + id, CreatedAt: now}
	}
	return out
}

// readAll is ReadPage collected, stopping after stop entries (0: never).
func readAll(t *testing.T, tn *store.Tenant, after map[string]string, limit, stop int) []syncdata.PageEntry {
	t.Helper()
	var got []syncdata.PageEntry
	err := tn.ReadPage(t.Context(), after, limit, func(e *syncdata.PageEntry) (bool, error) {
		got = append(got, *e)
		return stop == 0 || len(got) < stop, nil
	})
	if err != nil {
		t.Fatalf("ReadPage: %v", err)
	}
	return got
}

// TestReadPageRecordOnce: a record named by several entries of a page comes
// with its first entry only, the others are marked Repeat; and reading
// stops when the reader says so.
func TestReadPageRecordOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		_, _, tn := twoWorkspaces(t, e)
		es := pageEntries(t,
			[3]string{"Board", `["b1"]`, "w1"},
			[3]string{"Board", `["b1"]`, "w1"},
			[3]string{"Workspace", `["w1"]`, "w1"},
			[3]string{"Board", `["b1"]`, "w1"},
			[3]string{"Board", `["gone"]`, "w1"},
			[3]string{"Board", `["gone"]`, "w1"},
			[3]string{"Board", `["b2"]`, "w2"},
		)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		after := map[string]string{"w1": "", "w2": ""}
		got := readAll(t, tn, after, 50, 0)
		if len(got) != len(es) {
			t.Fatalf("%d entries, want %d", len(got), len(es))
		}
		wantRepeat := []bool{false, true, false, true, false, true, false}
		for i, g := range got {
			if g.ID != es[i].ID || g.Repeat != wantRepeat[i] {
				t.Errorf("entry %d: %s repeat=%v, want %s repeat=%v", i, g.ID, g.Repeat, es[i].ID, wantRepeat[i])
			}
			if g.Repeat && (g.Record != nil || g.Scopes != nil) {
				t.Errorf("entry %d repeats its record but carries %v in %v", i, g.Record, g.Scopes)
			}
		}
		if got[0].Record["title"] != "One" || got[2].Record == nil || got[4].Record != nil || got[6].Record["title"] != "Two" {
			t.Errorf("records: %v, %v, %v, %v", got[0].Record, got[2].Record, got[4].Record, got[6].Record)
		}
		// ChangesWithRecords gives every entry its record.
		all, err := tn.ChangesWithRecords(t.Context(), after, 50)
		if err != nil || len(all) != len(es) || all[3].Record["title"] != "One" || all[5].Record != nil {
			t.Errorf("ChangesWithRecords: %d entries, %v", len(all), err)
		}
		// A page is read only as far as the reader goes; the next read
		// starts after the last entry taken, where b1 is new again.
		if part := readAll(t, tn, after, 50, 2); len(part) != 2 {
			t.Fatalf("stopped after 2: got %d", len(part))
		}
		rest := readAll(t, tn, map[string]string{"w1": es[2].ID, "w2": ""}, 50, 0)
		if len(rest) != 4 || rest[0].Repeat || rest[0].Record["title"] != "One" {
			t.Errorf("after entry 2: %d entries, first %+v", len(rest), rest[0])
		}
	})
}

// TestReadPageManyScopes: one page across 700 scopes (SQLite refused more
// than 500 terms in the compound SELECT the union read was) merged in id
// order, each scope after its own cursor.
func TestReadPageManyScopes(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		_, _, tn := twoWorkspaces(t, e)
		var specs [][3]string
		for i := 0; i < 700; i++ {
			sc := fmt.Sprintf("s%04d", i)
			specs = append(specs, [3]string{"Board", `["x` + sc + `"]`, sc}, [3]string{"Board", `["y` + sc + `"]`, sc})
		}
		es := pageEntries(t, specs...)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		after := map[string]string{}
		for i := 0; i < 700; i++ {
			after[fmt.Sprintf("s%04d", i)] = ""
		}
		after["s0000"] = es[1].ID // s0000 is read
		got := readAll(t, tn, after, 50, 0)
		if len(got) != 50 {
			t.Fatalf("%d entries, want 50", len(got))
		}
		for i, g := range got {
			if g.ID != es[i+2].ID {
				t.Fatalf("entry %d: %s (%s), want %s", i, g.ID, g.ScopeKey, es[i+2].ID)
			}
		}
	})
}

// TestReadPageInChunks: keys the one statement cannot read from a key path
// (a DateTime here) are loaded a few records at a time, each record once.
func TestReadPageInChunks(t *testing.T) {
	const src = `
model Org {
  id     String  @id
  events Event[]
}
model Event {
  orgId String
  at    DateTime
  note  String
  org   Org      @relation(fields: [orgId], references: [id], onDelete: Cascade)
  @@id([orgId, at])
}`
	forEachDB(t, func(t *testing.T, e *env) {
		tn := openTenant(t, e.st, "chunks", src, "Org")
		if tn.OneStatementPage() {
			t.Fatal("a DateTime key is read in one statement")
		}
		upsert(t, tn, "Org", schema.Record{"id": "o1"})
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var specs [][3]string
		for i := 0; i < 40; i++ {
			at := base.Add(time.Duration(i) * time.Second)
			upsert(t, tn, "Event", schema.Record{"orgId": "o1", "at": at, "note": fmt.Sprintf("n%d", i)})
			key := fmt.Sprintf(`["o1","%s"]`, at.Format("2006-01-02T15:04:05.000Z"))
			specs = append(specs, [3]string{"Event", key, "o1"})
			if i%10 == 0 {
				specs = append(specs, [3]string{"Event", key, "o1"}) // the same record again
			}
		}
		es := pageEntries(t, specs...)
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, tn, map[string]string{"o1": ""}, 100, 0)
		if len(got) != len(es) {
			t.Fatalf("%d entries, want %d", len(got), len(es))
		}
		n := 0
		for i, g := range got {
			if g.Repeat != (i > 0 && string(es[i-1].KeyPath) == string(g.KeyPath)) {
				t.Errorf("entry %d repeat=%v", i, g.Repeat)
			}
			if g.Repeat {
				continue
			}
			if want := fmt.Sprintf("n%d", n); g.Record["note"] != want {
				t.Errorf("entry %d: record %v, want note %s", i, g.Record, want)
			}
			n++
		}
	})
}

// TestReadPageJSONEveryType: a page writes its records as JSON from the
// statement's columns; for values of every type, edge values included,
// those are the bytes the schema's encoder writes of the record as Load
// reads it, and they decode to that record. On PostgreSQL, both ways a
// page is read (pgx, database/sql).
func TestReadPageJSONEveryType(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sch, _, tn := twoWorkspaces(t, e)
		edge := schema.Record{
			"id": "v3", "workspaceId": "w1",
			"str": "<>&\u2028\u2029\x01\x1f\t\n\r\\\"'é🎉", "int": int64(math.MaxInt32), "float": 0.30000000000000004, "bool": true, // 0.1+0.2 (the constant 0.1 + 0.2 is 0.3)
			"time":  time.Date(1, 1, 1, 0, 0, 0, 1e6, time.UTC),
			"json":  json.RawMessage(`{"z":1,"a":"<\u2028>","n":[1e300,0.5,-0]}`),
			"bytes": []byte("\x00\xff any bytes that take more than seventy-six characters of base64, which breaks lines"),
			"big":   int64(9007199254740993), "dec": "-0.000100", "role": "OWNER",
			"optStr": "\u007f\ufffd", "optInt": int64(math.MinInt32), "optFloat": 5e-324, "optBool": false,
			"optTime":  time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
			"optJson":  json.RawMessage(`null`),
			"optBytes": []byte{}, "optBig": int64(math.MinInt64), "optDec": "100000.5", "optRole": nil,
			"strs":   []any{"\u2028", "\"", ""},
			"ints":   []any{int64(math.MinInt32)},
			"floats": []any{math.MaxFloat64, 1e21, 1e-7, 123456789.125, -0.0},
			"bools":  []any{false},
			"times":  []any{time.Date(2024, 2, 29, 13, 45, 6, 789e6, time.UTC)},
			"jsons":  []any{json.RawMessage(`{"k":"\u00e9"}`)},
			"blobs":  []any{[]byte{}},
			"bigs":   []any{int64(-1)},
			"decs":   []any{"0.10"},
			"roles":  []any{},
		}
		full, empty := everyValue()
		upsert(t, tn, "Value", full, empty, edge)
		es := pageEntries(t, [3]string{"Value", `["v1"]`, "w1"}, [3]string{"Value", `["v2"]`, "w1"}, [3]string{"Value", `["v3"]`, "w1"})
		if err := appendEntries(t, tn, es); err != nil {
			t.Fatal(err)
		}
		m := sch.Model("Value")
		check := func(t *testing.T) {
			n := 0
			err := tn.ReadPageJSON(t.Context(), map[string]string{"w1": ""}, 10, func(p *syncdata.PageEntry) (bool, error) {
				n++
				recs := load(t, tn, "Value", "id", string(p.KeyPath[2:4]))
				if len(recs) != 1 {
					t.Fatalf("%s: loaded %v", p.KeyPath, recs)
				}
				want, err := m.MarshalRecord(recs[0])
				if err != nil {
					t.Fatal(err)
				}
				if string(p.JSON) != string(want) {
					t.Errorf("%s: page record\n%s\nwant (the schema's encoder)\n%s", p.KeyPath, p.JSON, want)
				}
				dec, err := m.DecodeRecord(p.JSON)
				if err != nil {
					t.Fatal(err)
				}
				if raw, _ := recs[0]["optJson"].(json.RawMessage); string(raw) == "null" {
					dec["optJson"] = json.RawMessage("null") // a Json null and a NULL are one null on the wire
				}
				if diff := cmp.Diff(recs[0], dec, jsonEqual); diff != "" {
					t.Errorf("%s: decoded page record (-Load +page):\n%s", p.KeyPath, diff)
				}
				return true, nil
			})
			if err != nil || n != 3 {
				t.Fatalf("ReadPageJSON: %d entries, %v", n, err)
			}
		}
		check(t)
		if e.db.Name == "postgres" {
			t.Run("read=database/sql", func(t *testing.T) {
				defer store.ReadPagesThroughDatabaseSQL()()
				check(t)
			})
		}
	})
}

// everyValue are the two records of TestRoundTrip: every type, with values
// and empty.
func everyValue() (full, empty schema.Record) {
	full = schema.Record{
		"id": "v1", "workspaceId": "w1",
		"str": "héllo 'quoted' \"double\" 🎉", "int": int64(math.MinInt32), "float": 3.25, "bool": true,
		"time":  time.Date(2024, 2, 29, 13, 45, 6, 789e6, time.UTC),
		"json":  json.RawMessage(`{"c":"x","a":[1,2.5,{"b":null}],"n":12345678901234567890}`),
		"bytes": []byte{0, 1, 2, 0xfe, 0xff},
		"big":   int64(math.MaxInt64), "dec": "12345678901234567890.123456789", "role": "OWNER",
		"optStr": "x", "optInt": int64(math.MaxInt32), "optFloat": -0.5, "optBool": false,
		"optTime":  time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.UTC),
		"optJson":  json.RawMessage(`[1,"two",false]`),
		"optBytes": []byte{}, "optBig": int64(math.MinInt64), "optDec": "-0.001", "optRole": "MEMBER",
		"strs":   []any{"a", "", "ü,\"x\""},
		"ints":   []any{int64(1), int64(-2), int64(math.MaxInt32)},
		"floats": []any{0.1, -1e-7, 1e300, 0.0},
		"bools":  []any{true, false},
		"times": []any{
			time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
		},
		"jsons": []any{json.RawMessage(`{"k":[1]}`), json.RawMessage(`"s"`), json.RawMessage(`null`)},
		"blobs": []any{[]byte{0, 0xff}, []byte("xyz"), []byte{}},
		"bigs":  []any{int64(math.MaxInt64), int64(math.MinInt64)},
		"decs":  []any{"1.50", "-3"},
		"roles": []any{"OWNER", "MEMBER"},
	}
	empty = schema.Record{
		"id": "v2", "workspaceId": "w1",
		"str": "", "int": int64(0), "float": 0.0, "bool": false,
		"time":  time.Unix(0, 0).UTC(),
		"json":  json.RawMessage(`{}`),
		"bytes": []byte{},
		"big":   int64(0), "dec": "0", "role": "MEMBER",
		"optStr": nil, "optInt": nil, "optFloat": nil, "optBool": nil, "optTime": nil,
		"optJson": nil, "optBytes": nil, "optBig": nil, "optDec": nil, "optRole": nil,
		"strs": []any{}, "ints": []any{}, "floats": []any{}, "bools": []any{}, "times": []any{},
		"jsons": []any{}, "blobs": []any{}, "bigs": []any{}, "decs": []any{}, "roles": []any{},
	}
	return full, empty
}
