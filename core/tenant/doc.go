// Package tenant loads tenants: a folder with a manifest (tenant.yaml), a
// Prisma schema (a file, or a folder read recursively, as a prisma-idb app
// keeps it), an optional policy file and key material. A Folder reads a
// tenant folder once: the manifest, and on first use the schema with the
// root model and exclude list resolved from the manifest and the schema's
// prisma-idb generator block, the policy, the key material and the
// validator's configuration; the tools (`syncplane token`, `policy`,
// `plugin verify`) read only the parts they need through it. Load turns
// one folder into a running *Tenant (schema, ownership, token verifier,
// policy, storage migrated to the schema, push and pull services); LoadDir
// loads every folder of a tenants directory, where one bad tenant is
// reported and skipped and never stops the others. A Registry holds the
// running tenants.
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
// The built-in demo tenant (folder demo/: tenant.yaml, prisma/schema.prisma
// and prisma/models/kanban.prisma, embedded) is what `syncplane serve` runs
// when no tenants directory is configured.
package tenant
