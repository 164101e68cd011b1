//go:build !unix

package main

// openFileLimit is not known on this system: the automatic connection cap
// is defaultMaxConns.
func openFileLimit() (uint64, bool) { return 0, false }
