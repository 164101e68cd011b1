//go:build !race

package nodetest

// Race is true under `go test -race`; see race.go.
const Race = false
