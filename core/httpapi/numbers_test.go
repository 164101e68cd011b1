package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// numbersSchema has a model with every number type.
const numbersSchema = `
generator prismaIDB {
  provider  = "idb-client-generator"
  rootModel = "User"
}
datasource db {
  provider = "postgresql"
}
model User {
  id   String @id
  nums Num[]
}
model Num {
  id     String  @id
  userId String
  user   User    @relation(fields: [userId], references: [id], onDelete: Cascade)
  f      Float
  of     Float?
  fs     Float[]
  big    BigInt
  bigs   BigInt[]
  dec    Decimal
}
`

// TestNumberPrecision: numbers pushed come back from pull as they were
// sent, on every database: Floats that need 17 significant digits (0.1+0.2
// is 0.30000000000000004, not 0.3), the largest and the smallest float64,
// BigInts beyond 2^53, a Decimal with more digits than a float64 holds;
// through a create and an update (push reads the stored record first).
// Floats come in encoding/json's form: 2.0 as 2, 1e308 as 1e+308.
func TestNumberPrecision(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		root := t.TempDir()
		dir := filepath.Join(root, "acme")
		must(t, os.MkdirAll(filepath.Join(dir, "prisma"), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "prisma", "schema.prisma"), []byte(numbersSchema), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte(secrets["acme"]+"\n"), 0o600))
		manifest := "id: acme\nschema: prisma\nauth:\n  hs256SecretFile: secret\n  issuer: https://acme.example\n  audience: syncplane\n"
		must(t, os.WriteFile(filepath.Join(dir, tenant.ManifestFile), []byte(manifest), 0o644))
		reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: db.Open(t), Log: quietLog()})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		srv := httptest.NewServer(httpapi.New(reg, quietLog()))
		t.Cleanup(srv.Close)
		tok := token(t, "acme", "u1")
		// The payloads are written out, not encoded from Go values, so
		// that the numbers are the exact text a client sends.
		event := func(id, model, op, payload string) string {
			return `{"id":"` + id + `","entityType":"` + model + `","operation":"` + op + `","payload":` + payload +
				`,"createdAt":"2026-11-25T10:00:00.000Z","tries":0,"lastError":null,"synced":false,"syncedAt":null,"retryable":true,"lastAttemptedAt":null}`
		}
		pushRaw := func(events ...string) {
			t.Helper()
			body := `{"events":[`
			for i, e := range events {
				if i > 0 {
					body += ","
				}
				body += e
			}
			code, out, _ := post(t, srv.URL+"/v1/tenants/acme/push", tok, []byte(body+"]}"))
			if code != http.StatusOK {
				t.Fatalf("push: %d %s", code, out)
			}
			var res []map[string]any
			must(t, jsonUnmarshal(out, &res))
			for _, r := range res {
				if r["error"] != nil {
					t.Fatalf("push: %s", out)
				}
			}
		}
		pulled := func() map[string]string {
			t.Helper()
			out := map[string]string{}
			for _, l := range pullAllWith(t, srv.URL, "acme", tok) {
				if l.Model == "Num" {
					out[string(l.KeyPath)] = string(l.Record)
				}
			}
			return out
		}
		n1 := `{"id":"n1","userId":"u1","f":0.30000000000000004,"of":123456789.12345678,` +
			`"fs":[1.7976931348623157e+308,5e-324,1.0000000000000002,1.0000000000000001e-7,2.2250738585072014e-308,0.3,2.0,999999999999999900000,1e21],` +
			`"big":9007199254740993,"bigs":[9223372036854775807,-9223372036854775808,9007199254740993],"dec":"12345678901234567890.123456789"}`
		n2 := `{"id":"n2","userId":"u1","f":2.0,"of":null,"fs":[],"big":"9007199254740995","bigs":[],"dec":0.30000000000000004}`
		pushRaw(event("e1", "User", "create", `{"id":"u1"}`), event("e2", "Num", "create", n1), event("e3", "Num", "create", n2))
		want := map[string]string{
			`["n1"]`: `{"id":"n1","userId":"u1","f":0.30000000000000004,"of":123456789.12345678,` +
				`"fs":[1.7976931348623157e+308,5e-324,1.0000000000000002,1.0000000000000001e-7,2.2250738585072014e-308,0.3,2,999999999999999900000,1e+21],` +
				`"big":9007199254740993,"bigs":[9223372036854775807,-9223372036854775808,9007199254740993],"dec":"12345678901234567890.123456789"}`,
			`["n2"]`: `{"id":"n2","userId":"u1","f":2,"of":null,"fs":[],"big":9007199254740995,"bigs":[],"dec":"0.30000000000000004"}`,
		}
		check := func(when string) {
			t.Helper()
			got := pulled()
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s: pulled %s\n%s\nwant\n%s", when, k, got[k], w)
				}
			}
		}
		check("after the create")

		n1 = `{"id":"n1","userId":"u1","f":-0.30000000000000004,"of":1.0000000000000002,"fs":[0.30000000000000004],` +
			`"big":-9007199254740993,"bigs":[],"dec":"-0.30000000000000004"}`
		pushRaw(event("e4", "Num", "update", n1))
		want[`["n1"]`] = n1
		check("after the update")
	})
}
