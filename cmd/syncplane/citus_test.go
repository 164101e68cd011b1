package main

import (
	"strings"
	"testing"

	"github.com/syncplane/syncplane/core/storetest"
)

// On a Citus cluster (SYNCPLANE_TEST_CITUS_URL, see storetest.CitusURL),
// migrate tells after its usual line that each tenant's schema is a
// distributed schema, or how to distribute one that is not. (Without
// Citus it prints its usual line only: TestMigrate.)
func TestMigrateCitus(t *testing.T) {
	t.Parallel()
	on, off := storetest.CitusURL(t, true), storetest.CitusURL(t, false)
	sharded, local := storetest.NewTenantID("citus-on-"), storetest.NewTenantID("citus-off-")
	storetest.DropCitusTenant(t, on, sharded)
	storetest.DropCitusTenant(t, on, local)

	offRoot := t.TempDir()
	writeTenant(t, offRoot, local, "")
	if _, _, err := runCmd(t, env{"SYNCPLANE_DATABASE_URL": off, "SYNCPLANE_TENANTS_DIR": offRoot}, "migrate", "--data", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeTenant(t, root, sharded, "")
	writeTenant(t, root, local, "")
	out, stderr, err := runCmd(t, env{"SYNCPLANE_DATABASE_URL": on, "SYNCPLANE_TENANTS_DIR": root}, "migrate", "--data", t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	ids := []string{local, sharded}
	if sharded < local {
		ids = []string{sharded, local}
	}
	if len(lines) != 3 || lines[0] != "migrated tenants: ["+ids[0]+" "+ids[1]+"]" {
		t.Fatalf("stdout:\n%s", out)
	}
	schemaOf := func(id string) string { return "t_" + strings.ReplaceAll(id, "-", "_") }
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "tenant "+sharded+": "):
			if !strings.HasPrefix(l, "tenant "+sharded+": distributed schema "+schemaOf(sharded)+" (colocation ") {
				t.Errorf("line %q", l)
			}
		case strings.HasPrefix(l, "tenant "+local+": "):
			if l != "tenant "+local+": schema "+schemaOf(local)+" is not distributed (SELECT citus_schema_distribute('"+schemaOf(local)+"'))" {
				t.Errorf("line %q", l)
			}
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	if strings.Contains(stderr, "citus: could not tell") {
		t.Errorf("stderr:\n%s", stderr)
	}
}
