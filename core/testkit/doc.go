// Package testkit holds what syncplane's Go tests share and that needs no
// database: a buffer a running server writes while the test reads it
// (LockedBuffer), polling until a condition holds (Eventually), and the
// kanban fixture, the demo tenant's schema (core/tenant/demo/prisma)
// parsed into a schema and its ownership (Kanban). The databases to test
// against are core/storetest's.
//
// It is a plain (not internal) package so that cmd/ and plugins/ may
// import it too. Only tests import it.
package testkit
