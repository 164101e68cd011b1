//go:build !race

package typescript_test

const raceEnabled = false
