// Package schema reads a tenant's Prisma schema and turns it into what the
// sync engine needs to enforce it.
//
// [Parse] and [Load] accept the subset of the Prisma schema language that
// matters to syncplane — models, enums, scalar and enum fields, optional
// fields and scalar lists, @id/@@id, @unique/@@unique, @default,
// @relation(fields, references, onDelete), @map/@@map — and accept and
// ignore the rest (datasource and other generator blocks, composite types,
// views, other attributes). A schema may span several files; [Load] reads a
// folder recursively (Prisma's prisma/schema.prisma + prisma/models/*.prisma
// layout). Every error names its file, line and column.
//
// prisma-idb's generator block (provider "idb-client-generator") is read
// into [Schema.IDB]: its rootModel and its exclude/include model patterns.
// The Changelog model and ChangeOperation enum it requires are the
// client's bookkeeping: [BuildOwnership] never syncs the Changelog model.
//
// [BuildOwnership] derives the ownership DAG: every synced model must reach
// the root model through many-to-one relations; a record's scope key is the
// primary key of the root record it belongs to, and [Ownership.Paths] lists
// the ways to get there, shortest first.
//
// [Model.Validate], [Model.ValidateKey] and [Model.MarshalRecord] check and
// convert record payloads with prisma-idb's semantics, so that what the
// browser client accepts is what the server accepts: like its generated
// zod validators, every column field must be present (defaults are the
// client's to fill in, never the server's) and only optional fields may be
// null.
//
// It is used by core/push and core/pull (validation and scope resolution),
// core/store (typed tables, built from [Schema], and [Ownership.Synced] for
// the order of creation) and cmd/syncplane (loading the configured schema).
package schema
