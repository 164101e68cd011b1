// Package tenant loads tenants: a folder with a manifest (tenant.yaml), a
// Prisma schema, an optional policy file and key material. Load turns one
// folder into a running *Tenant (schema, ownership, token verifier, policy,
// storage migrated to the schema, push and pull services); LoadDir loads
// every folder of a tenants directory, where one bad tenant is reported and
// skipped and never stops the others. A Registry holds the running tenants.
//
// Watch (or NewWatcher then Run) keeps a Registry in step with a tenants
// directory: it watches the directory, every tenant folder and their schema
// folders with fsnotify and, once a burst of changes has been quiet for
// 250ms, calls Reload. A tenant whose new files are refused (an empty or
// malformed policy file, a broken schema, a destructive schema change) keeps
// serving its last good version, and the refusal is logged with its file and
// line. Requests in flight finish on the *Tenant they started with.
// `syncplane serve --tenants DIR` runs it.
//
// The built-in demo tenant (folder demo/, embedded) is what `syncplane
// serve` runs when no tenants directory is configured.
package tenant
