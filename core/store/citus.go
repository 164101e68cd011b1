package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Citus (docs/citus.md). With citus.enable_schema_based_sharding on when a
// tenant is created, its schema t_<id> is a distributed schema: all of its
// tables form one colocation group, placed on one node of the cluster, so
// that every statement of push and pull runs on that node. Nothing in
// syncplane depends on it; Distribution only tells the operator which
// tenants are placed that way (`syncplane migrate` prints it).

// Distribution is what Store.Distribution found: whether the database has
// the citus extension and, if so, where each tenant's schema lives.
type Distribution struct {
	// Citus is the version of the citus extension installed in the
	// database, "" when it is not (and always on SQLite).
	Citus string
	// SchemaSharding is whether that version has schema-based sharding
	// (Citus 12.0 and later: the catalog table pg_dist_schema).
	SchemaSharding bool
	// Tenants has one entry per tenant asked about, in the order asked,
	// when SchemaSharding is true; it is empty otherwise.
	Tenants []TenantDistribution
}

// TenantDistribution is the placement of one tenant's schema.
type TenantDistribution struct {
	Tenant string // the tenant's id
	Schema string // its PostgreSQL schema, t_<id>
	// Distributed is whether the schema is a distributed schema (it has a
	// row in pg_dist_schema).
	Distributed bool
	// Colocation is the distributed schema's colocation group, 0 when it
	// is not distributed.
	Colocation int64
	// Node is host:port of the node that holds the schema's tables, ""
	// when it is not distributed or has no table.
	Node string
	// Outside counts the tables of a distributed schema that are not in
	// its colocation group: they were in the schema before it was
	// registered as distributed without being distributed themselves
	// (docs/citus.md, "Tenants created before"). 0 when it is not
	// distributed.
	Outside int
}

// String is the line `syncplane migrate` prints for the tenant.
func (d TenantDistribution) String() string {
	switch {
	case !d.Distributed:
		return fmt.Sprintf("tenant %s: schema %s is not distributed (SELECT citus_schema_distribute('%s'))", d.Tenant, d.Schema, d.Schema)
	case d.Outside > 0:
		return fmt.Sprintf("tenant %s: schema %s is a distributed schema (colocation %d) but %d of its tables are not distributed with it (see docs/citus.md)",
			d.Tenant, d.Schema, d.Colocation, d.Outside)
	case d.Node == "":
		return fmt.Sprintf("tenant %s: distributed schema %s (colocation %d)", d.Tenant, d.Schema, d.Colocation)
	default:
		return fmt.Sprintf("tenant %s: distributed schema %s (colocation %d, on %s)", d.Tenant, d.Schema, d.Colocation, d.Node)
	}
}

// Lines are the lines `syncplane migrate` prints: none without Citus, one
// when Citus has no schema-based sharding, else one per tenant.
func (d Distribution) Lines() []string {
	switch {
	case d.Citus == "":
		return nil
	case !d.SchemaSharding:
		return []string{fmt.Sprintf("citus %s has no schema-based sharding (Citus 12.0 or later): no tenant schema is distributed", d.Citus)}
	}
	lines := make([]string, len(d.Tenants))
	for i, t := range d.Tenants {
		lines[i] = t.String()
	}
	return lines
}

// citusSQL tells whether the citus extension is installed, its version,
// and whether it has schema-based sharding.
const citusSQL = `SELECT e.extversion, to_regclass('pg_catalog.pg_dist_schema') IS NOT NULL
FROM pg_catalog.pg_extension e WHERE e.extname = 'citus'`

// distributionSQL reads, for each schema name in $1 (in its order), the
// colocation group of the distributed schema of that name (NULL when it is
// not one), the node that holds its tables and the number of its tables
// outside that group (shards, which the coordinator may hold in the same
// schema, left out). It reads Citus's catalog tables (pg_dist_schema,
// pg_dist_partition, pg_dist_shard, pg_dist_placement, pg_dist_node; all
// readable by every role) rather than the views citus_schemas and
// citus_shards, which compute the size of every shard by asking every
// worker.
const distributionSQL = `SELECT d.colocationid,
  (SELECT nd.nodename || ':' || nd.nodeport
     FROM pg_catalog.pg_dist_partition pt
     JOIN pg_catalog.pg_dist_shard sh ON sh.logicalrelid = pt.logicalrelid
     JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = sh.shardid
     JOIN pg_catalog.pg_dist_node nd ON nd.groupid = pl.groupid
    WHERE pt.colocationid = d.colocationid AND pl.shardstate = 1 AND nd.noderole = 'primary'
    ORDER BY sh.shardid LIMIT 1),
  (SELECT count(*)
     FROM pg_catalog.pg_class c
    WHERE d.colocationid IS NOT NULL AND c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
      AND NOT pg_catalog.relation_is_a_known_shard(c.oid::regclass)
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition pt
                       WHERE pt.logicalrelid = c.oid AND pt.colocationid = d.colocationid))
FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i)
LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = u.name
LEFT JOIN pg_catalog.pg_dist_schema d ON d.schemaid = n.oid
ORDER BY u.i`

// Distribution reports whether the database has the citus extension and,
// when its version has schema-based sharding, whether each of the tenants
// ids has a distributed schema, with its colocation group and node. On a
// PostgreSQL without Citus, and on SQLite, it reports no Citus and reads
// nothing else.
func (s *Store) Distribution(ctx context.Context, ids []string) (Distribution, error) {
	var d Distribution
	pg, ok := s.b.(*postgres)
	if !ok {
		return d, nil
	}
	err := pg.pool.QueryRow(ctx, citusSQL).Scan(&d.Citus, &d.SchemaSharding)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Distribution{}, nil
	case err != nil:
		return Distribution{}, fmt.Errorf("citus extension: %w", classify(err))
	case !d.SchemaSharding:
		return d, nil
	}
	schemas := make([]string, len(ids))
	for i, id := range ids {
		schemas[i] = schemaName(id)
	}
	rows, err := pg.pool.Query(ctx, distributionSQL, schemas)
	if err != nil {
		return Distribution{}, fmt.Errorf("citus distributed schemas: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var coloc *int64
		var node *string
		var outside int64
		if err := rows.Scan(&coloc, &node, &outside); err != nil {
			return Distribution{}, fmt.Errorf("citus distributed schemas: %w", classify(err))
		}
		i := len(d.Tenants)
		if i >= len(ids) {
			return Distribution{}, errors.New("citus distributed schemas: more rows than tenants")
		}
		t := TenantDistribution{Tenant: ids[i], Schema: schemas[i], Distributed: coloc != nil, Outside: int(outside)}
		if coloc != nil {
			t.Colocation = *coloc
		}
		if node != nil {
			t.Node = *node
		}
		d.Tenants = append(d.Tenants, t)
	}
	if err := rows.Err(); err != nil {
		return Distribution{}, fmt.Errorf("citus distributed schemas: %w", classify(err))
	}
	if len(d.Tenants) != len(ids) {
		return Distribution{}, fmt.Errorf("citus distributed schemas: %d rows for %d tenants", len(d.Tenants), len(ids))
	}
	return d, nil
}
