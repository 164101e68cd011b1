//go:build race

package typescript_test

// raceEnabled is true under `go test -race`: the server binary is then
// built with -race too, which reuses the race-built packages that go test
// has compiled already (and runs the server under the race detector).
const raceEnabled = true
