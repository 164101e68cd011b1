CREATE TABLE IF NOT EXISTS syncplane_tenants (
    id          TEXT PRIMARY KEY,
    layout_hash TEXT NOT NULL,
    migrated_at TEXT NOT NULL
);
