package store_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
)

// hardFloats are Float values a store must give back bit for bit: most
// need 17 significant digits (a REAL that went through text with 15, as
// SQLite's printf('%!.15g') writes it, would come back as 0.3 for
// 0.1+0.2), some sit at the edges of the range or of encoding/json's
// exponent form, a few are ordinary. Negative zero is not among them:
// neither SQLite's REAL nor PostgreSQL's jsonb (a Float list) keeps its
// sign.
func hardFloats() []float64 {
	a, b := 0.1, 0.2 // variables: the constant 0.1 + 0.2 is exactly 0.3
	return []float64{
		a + b, // 0.30000000000000004
		1.0000000000000002,
		-2.0000000000000004,
		123456789.12345678,
		1.0000000000000001e-7,
		math.Nextafter(1e-6, 0), // 9.999999999999999e-7
		1e-6,
		math.Nextafter(1e21, 0), // 999999999999999900000
		1e21,
		math.MaxFloat64,
		-math.MaxFloat64,
		math.SmallestNonzeroFloat64, // 5e-324
		2.2250738585072014e-308,
		math.Pi,
		0.3, 0.1, 2, 0,
	}
}

// sameBits compares float64 values bit for bit.
var sameBits = cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })

// TestFloatRoundTrip: Float values (scalar, optional, list) come back bit
// for bit through every read of records — Load, a transaction's Load and
// LoadAll (push's lookups), Find by a Float value (a validator's reads),
// LoadScoped — and a pull page writes them as encoding/json does: in the
// one-statement page, in the page read a few records at a time (a Float
// in the key), and on PostgreSQL through database/sql too.
func TestFloatRoundTrip(t *testing.T) {
	const byID = `
model Org {
  id   String @id
  nums Num[]
}
model Num {
  id    String @id
  orgId String
  org   Org    @relation(fields: [orgId], references: [id], onDelete: Cascade)
  f     Float
  of    Float?
  fs    Float[]
}`
	const byFloat = `
model Org {
  id   String @id
  nums Num[]
}
model Num {
  orgId String
  at    Float
  org   Org    @relation(fields: [orgId], references: [id], onDelete: Cascade)
  f     Float
  of    Float?
  fs    Float[]
  @@id([orgId, at])
}`
	forEachDB(t, func(t *testing.T, e *env) {
		for _, tc := range []struct {
			name, src    string
			oneStatement bool
		}{{"key=String", byID, true}, {"key=Float", byFloat, false}} {
			t.Run(tc.name, func(t *testing.T) {
				sch, _ := parseSchema(t, tc.src, "Org")
				tn := openTenant(t, e.st, "floats-"+fmt.Sprint(tc.oneStatement), tc.src, "Org")
				if tn.OneStatementPage() != tc.oneStatement {
					t.Fatalf("one-statement page: %v, want %v", tn.OneStatementPage(), tc.oneStatement)
				}
				m := sch.Model("Num")
				upsert(t, tn, "Org", schema.Record{"id": "o1"})
				vals := hardFloats()
				all := make([]any, len(vals))
				var recs []schema.Record
				for i, v := range vals {
					all[i] = v
					r := schema.Record{"orgId": "o1", "f": v, "of": 0 - v, "fs": []any{v, 0 - v}} // 0 - 0 is +0
					if tc.oneStatement {
						r["id"] = fmt.Sprintf("n%02d", i)
					} else {
						r["at"] = v
					}
					recs = append(recs, r)
				}
				last := schema.Record{"orgId": "o1", "f": vals[0], "of": nil, "fs": all}
				if tc.oneStatement {
					last["id"] = "z"
				} else {
					last["at"] = 0.5
				}
				recs = append(recs, last)
				upsert(t, tn, "Num", recs...)

				keys := make([][]any, len(recs))
				want := map[string]schema.Record{}
				var specs [][3]string
				for i, r := range recs {
					for _, f := range m.PrimaryKey {
						keys[i] = append(keys[i], r[f])
					}
					k := scope.KeyJSON(keys[i])
					want[k] = r
					specs = append(specs, [3]string{"Num", k, "o1"})
				}
				check := func(t *testing.T, how string, got []schema.Record) {
					t.Helper()
					if len(got) != len(recs) {
						t.Fatalf("%s: %d records, want %d", how, len(got), len(recs))
					}
					for _, g := range got {
						var pk []any
						for _, f := range m.PrimaryKey {
							pk = append(pk, g[f])
						}
						k := scope.KeyJSON(pk)
						if diff := cmp.Diff(want[k], g, sameBits); diff != "" {
							t.Errorf("%s %s (-written +read):\n%s", how, k, diff)
						}
					}
				}
				ctx := t.Context()
				got, err := tn.Load(ctx, "Num", m.PrimaryKey, keys)
				if err != nil {
					t.Fatal(err)
				}
				check(t, "Load", got)
				got, _, err = tn.LoadScoped(ctx, "Num", keys)
				if err != nil {
					t.Fatal(err)
				}
				check(t, "LoadScoped", got)
				err = inTx(t, tn, func(x *store.Tx) error {
					got, err := x.Load(ctx, "Num", m.PrimaryKey, keys)
					if err != nil {
						return err
					}
					check(t, "Tx.Load", got)
					all, err := x.LoadAll(ctx, []syncdata.Lookup{{Model: "Num", Fields: m.PrimaryKey, Keys: keys}})
					if err != nil {
						return err
					}
					check(t, "Tx.LoadAll", all[0])
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range vals {
					found, err := tn.Find(ctx, "Num", []string{"f"}, []any{v}, 100)
					if err != nil {
						t.Fatal(err)
					}
					n := 1
					if math.Float64bits(v) == math.Float64bits(vals[0]) {
						n = 2 // and the last record
					}
					if len(found) != n {
						t.Errorf("Find f = %v: %d records, want %d", v, len(found), n)
					}
				}

				if err := appendEntries(t, tn, pageEntries(t, specs...)); err != nil {
					t.Fatal(err)
				}
				page := func(t *testing.T) {
					n := 0
					err := tn.ReadPageJSON(ctx, map[string]string{"o1": ""}, 100, func(p *syncdata.PageEntry) (bool, error) {
						n++
						r, ok := want[string(p.KeyPath)]
						if !ok {
							t.Fatalf("page entry of %s", p.KeyPath)
						}
						doc, err := m.MarshalRecord(r)
						if err != nil {
							t.Fatal(err)
						}
						if string(p.JSON) != string(doc) {
							t.Errorf("%s: page record\n%s\nwant\n%s", p.KeyPath, p.JSON, doc)
						}
						var dec struct {
							F  float64   `json:"f"`
							Fs []float64 `json:"fs"`
						}
						if err := json.Unmarshal(p.JSON, &dec); err != nil {
							t.Fatal(err)
						}
						if diff := cmp.Diff(r["f"], dec.F, sameBits); diff != "" {
							t.Errorf("%s: f decoded from the page (-written +read):\n%s", p.KeyPath, diff)
						}
						return true, nil
					})
					if err != nil || n != len(recs) {
						t.Fatalf("ReadPageJSON: %d entries, %v", n, err)
					}
				}
				page(t)
				if e.db.Name == "postgres" {
					t.Run("read=database/sql", func(t *testing.T) {
						defer store.ReadPagesThroughDatabaseSQL()()
						page(t)
					})
				}
			})
		}
	})
}
