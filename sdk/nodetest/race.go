//go:build race

package nodetest

// Race is true under `go test -race`: BuildSyncplane(t, ctx, Race) then
// builds the server with -race too, which reuses the race-built packages
// that go test has compiled already (and runs the server under the race
// detector).
const Race = true
