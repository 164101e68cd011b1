DROP TABLE IF EXISTS syncplane_tenants;
