package tenant_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

func rlWriteTenant(t *testing.T, root, id, schemaSrc string) {
	t.Helper()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"schema.prisma":     schemaSrc,
		"secret":            "reload-secret-0123456789abcdef0123456789-" + id, // a key of its own
		tenant.ManifestFile: "id: " + id + "\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretFile: secret\n",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	demo, err := os.ReadFile("testdata/kanban.prisma")
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range storetest.Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			root := t.TempDir()
			opt := tenant.Options{Store: db.Open(t), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			rlWriteTenant(t, root, "one", string(demo))
			rlWriteTenant(t, root, "two", string(demo))
			reg, errs := tenant.LoadDir(ctx, root, opt)
			if len(errs) > 0 || len(reg.IDs()) != 2 {
				t.Fatalf("load: %v, tenants %v", errs, reg.IDs())
			}
			one := reg.Get("one")

			// A broken schema is refused; the last good version keeps serving.
			rlWriteTenant(t, root, "one", string(demo)+"\nmodel Broken {")
			errs = tenant.Reload(ctx, reg, root, opt)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(root, "one", "schema.prisma")+":") {
				t.Fatalf("reload of a broken schema: %v", errs)
			}
			if reg.Get("one") != one {
				t.Error("the broken tenant replaced its last good version")
			}

			// An additive change migrates and is swapped in.
			additive := strings.Replace(string(demo), "  title       String\n", "  title       String\n  priority    Int?\n", 1)
			rlWriteTenant(t, root, "one", additive)
			if errs := tenant.Reload(ctx, reg, root, opt); len(errs) != 0 {
				t.Fatalf("reload of an additive change: %v", errs)
			}
			if got := reg.Get("one"); got == one || got.Schema.Model("Todo").Field("priority") == nil {
				t.Error("the additive change was not swapped in")
			}

			// A destructive change is refused with its reason.
			destructive := strings.Replace(additive, "  description String?\n", "", 1)
			rlWriteTenant(t, root, "one", destructive)
			errs = tenant.Reload(ctx, reg, root, opt)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), "destructive") || !strings.Contains(errs[0].Error(), `"description"`) {
				t.Fatalf("reload of a destructive change: %v", errs)
			}
			if reg.Get("one").Schema.Model("Todo").Field("description") == nil {
				t.Error("the destructive change was swapped in")
			}

			// A removed folder removes its tenant.
			if err := os.RemoveAll(filepath.Join(root, "two")); err != nil {
				t.Fatal(err)
			}
			tenant.Reload(ctx, reg, root, opt)
			if reg.Get("two") != nil || reg.Get("one") == nil {
				t.Errorf("after removing two's folder: tenants %v", reg.IDs())
			}
		})
	}
}
