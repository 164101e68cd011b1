package store_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/storetest"
)

// Without the citus extension (SQLite, and the PostgreSQL of the tests,
// Debian's, which has none) Distribution reports no Citus and migrate
// prints nothing of it.
func TestDistributionWithoutCitus(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		kanbanTenant(t, e.st, "acme")
		for _, ids := range [][]string{{"acme"}, {"acme", "gone"}, nil} {
			d, err := e.st.Distribution(t.Context(), ids)
			if err != nil {
				t.Fatalf("Distribution(%v): %v", ids, err)
			}
			if diff := cmp.Diff(store.Distribution{}, d); diff != "" {
				t.Errorf("Distribution(%v) (-want +got):\n%s", ids, diff)
			}
			if l := d.Lines(); l != nil {
				t.Errorf("Lines() = %q, want none", l)
			}
		}
	})
}

func TestDistributionLines(t *testing.T) {
	t.Parallel()
	d := store.Distribution{Citus: "13.2-1", SchemaSharding: true, Tenants: []store.TenantDistribution{
		{Tenant: "acme", Schema: "t_acme", Distributed: true, Colocation: 3, Node: "worker-2:5432"},
		{Tenant: "beta-1", Schema: "t_beta_1", Distributed: true, Colocation: 4},
		{Tenant: "gamma", Schema: "t_gamma"},
		{Tenant: "delta", Schema: "t_delta", Distributed: true, Colocation: 5, Node: "worker-1:5432", Outside: 2},
	}}
	want := []string{
		"tenant acme: distributed schema t_acme (colocation 3, on worker-2:5432)",
		"tenant beta-1: distributed schema t_beta_1 (colocation 4)",
		"tenant gamma: schema t_gamma is not distributed (SELECT citus_schema_distribute('t_gamma'))",
		"tenant delta: schema t_delta is a distributed schema (colocation 5) but 2 of its tables are not distributed with it (see docs/citus.md)",
	}
	if diff := cmp.Diff(want, d.Lines()); diff != "" {
		t.Errorf("Lines() (-want +got):\n%s", diff)
	}
	old := store.Distribution{Citus: "11.3-1"}
	if diff := cmp.Diff([]string{"citus 11.3-1 has no schema-based sharding (Citus 12.0 or later): no tenant schema is distributed"}, old.Lines()); diff != "" {
		t.Errorf("Lines() of Citus 11 (-want +got):\n%s", diff)
	}
}

// On a Citus cluster (SYNCPLANE_TEST_CITUS_URL, see storetest.CitusURL): a
// tenant created with citus.enable_schema_based_sharding on is a
// distributed schema, placed on a node, whose tables take a write
// transaction (records, changelog entries, scope heads with their NOTIFY)
// and reads; a tenant created with it off is not, until
// citus_schema_distribute distributes it (foreign keys and all).
func TestDistributionCitus(t *testing.T) {
	t.Parallel()
	on, off := storetest.CitusURL(t, true), storetest.CitusURL(t, false)
	st := storetest.DB{Name: "citus"}.OpenAt(t, on, t.TempDir())
	plain := storetest.DB{Name: "citus"}.OpenAt(t, off, t.TempDir())
	sharded, local := storetest.NewTenantID("citus-on-"), storetest.NewTenantID("citus-off-")
	storetest.DropCitusTenant(t, on, sharded)
	storetest.DropCitusTenant(t, on, local)
	tn := kanbanTenant(t, st, sharded)
	kanbanTenant(t, plain, local)

	d, err := st.Distribution(t.Context(), []string{sharded, local})
	if err != nil {
		t.Fatal(err)
	}
	if d.Citus == "" || !d.SchemaSharding || len(d.Tenants) != 2 {
		t.Fatalf("Distribution = %+v, want Citus with schema-based sharding and 2 tenants", d)
	}
	got := d.Tenants[0]
	if schemaOf := "t_" + strings.ReplaceAll(sharded, "-", "_"); got.Tenant != sharded || got.Schema != schemaOf ||
		!got.Distributed || got.Colocation <= 0 || got.Node == "" {
		t.Errorf("tenant created with schema-based sharding on: %+v, want schema %s distributed on a node", got, schemaOf)
	}
	if !strings.HasPrefix(got.String(), "tenant "+sharded+": distributed schema ") {
		t.Errorf("line %q", got.String())
	}
	if got := d.Tenants[1]; got.Distributed || got.Colocation != 0 || got.Node != "" ||
		!strings.Contains(got.String(), "is not distributed (SELECT citus_schema_distribute('"+got.Schema+"'))") {
		t.Errorf("tenant created with schema-based sharding off: %+v, line %q", got, got.String())
	}
	t.Logf("Citus %s: %q", d.Citus, d.Lines())

	// Push's statements on the distributed schema.
	upsert(t, tn, "Workspace", workspace("w1"))
	if err := appendApplied(t, tn, "u1", entries(t, "w1", "", 3, "e")); err != nil {
		t.Fatalf("write transaction on a distributed schema: %v", err)
	}
	if recs := load(t, tn, "Workspace", "id", "w1"); len(recs) != 1 {
		t.Errorf("Workspace w1: %v", recs)
	}

	// The tenant created before schema-based sharding was on is
	// distributed by hand, as docs/citus.md says.
	db, err := sql.Open("pgx", on)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "SELECT citus_schema_distribute($1)", d.Tenants[1].Schema); err != nil {
		t.Fatalf("citus_schema_distribute: %v", err)
	}
	d, err = st.Distribution(t.Context(), []string{local})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tenants) != 1 || !d.Tenants[0].Distributed || d.Tenants[0].Node == "" || d.Tenants[0].Outside != 0 {
		t.Errorf("after citus_schema_distribute: %+v", d.Tenants)
	}

	// A tenant created before, not distributed by hand, and migrated with
	// schema-based sharding on: the migration's CREATE SCHEMA IF NOT EXISTS
	// registers its schema as distributed while its tables stay where they
	// are, which the report tells (docs/citus.md says to distribute such
	// tenants first).
	half := storetest.NewTenantID("citus-half-")
	storetest.DropCitusTenant(t, on, half)
	kanbanTenant(t, plain, half)
	wider := strings.Replace(kanban, "model Workspace {\n  id      String   @id\n", "model Workspace {\n  id      String   @id\n  nick    String?\n", 1)
	if wider == kanban {
		t.Fatal("schema not widened")
	}
	sch, own := parseSchema(t, wider, "Workspace", "User")
	if _, err := st.Tenant(t.Context(), half, sch, own); err != nil {
		t.Logf("migrating %s with schema-based sharding on: %v", half, err)
	}
	d, err = st.Distribution(t.Context(), []string{half})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tenants) != 1 || !d.Tenants[0].Distributed || d.Tenants[0].Outside == 0 ||
		!strings.Contains(d.Tenants[0].String(), "of its tables are not distributed with it") {
		t.Errorf("tenant registered as distributed with local tables: %+v %q", d.Tenants, d.Lines())
	}
	t.Logf("%q", d.Lines())
}
