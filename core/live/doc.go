// Package live carries "pokes" — a scope of a tenant got a commit, up to a
// changelog id — from the code that commits (push, or the PostgreSQL
// listener that hears other processes' commits) to the code that waits for
// them: Server-Sent Event streams and long-polling pulls in core/httpapi
// and core/pull. A Hub is per process and holds no goroutines of its own.
//
// Pokes can go unheard: the PostgreSQL listener's connection drops, and
// the commits other processes make until it is back send notifications to
// nobody. After every (re)connection the listener reads the heads of the
// scopes that have subscribers (Hub.Subscribed) and hands them to
// Hub.CatchUp, which pokes each scope whose head moved past the last id
// the hub announced for it.
package live
