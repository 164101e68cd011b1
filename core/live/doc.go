// Package live carries "pokes" — a scope of a tenant got a commit, up to a
// changelog id — from the code that commits (push, or the PostgreSQL
// listener that hears other processes' commits) to the code that waits for
// them: Server-Sent Event streams and long-polling pulls in core/httpapi
// and core/pull. A Hub is per process and holds no goroutines of its own.
package live
