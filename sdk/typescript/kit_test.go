//go:build unix

// Package typescript_test runs the TypeScript client kit's tests
// (@syncplane/client, in this folder) from `go test ./...`: it builds
// ./cmd/syncplane, installs and builds the kit with npm, and runs
// `node --test` against real `syncplane serve` processes that the node
// tests start with the built binary.
package typescript_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/syncplane/syncplane/sdk/nodetest"
)

// TestKit runs the kit's node tests. Without node or npm it skips, unless
// SYNCPLANE_TEST_REQUIRE_NODE=1 (then it fails).
func TestKit(t *testing.T) {
	nodetest.RequireNode(t, "SYNCPLANE_TEST_REQUIRE_NODE", "the TypeScript kit's tests need Node.js 20+ and npm")
	// Compiling the server and installing npm packages on a cold cache may
	// take minutes on a loaded machine; the node tests themselves take
	// seconds and get a budget of their own.
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelBuild()
	// Under `go test -race` the server is built with -race too.
	bin := nodetest.BuildSyncplane(t, buildCtx, nodetest.Race)
	// `npm ci`, then `npm run build` plus `npm run check` (the type test
	// against prisma-idb's generated types) when dist/ does not match the
	// sources. The build's stamp lives in node_modules too, so that
	// `npm pack` never ships it and a fresh `npm ci` rebuilds dist/.
	err := nodetest.Npm(buildCtx, ".", nodetest.CI(), nodetest.Step{
		Stamp:  "node_modules/.syncplane-build-stamp",
		Inputs: []string{"package.json", "package-lock.json", "tsconfig.json", "src", filepath.Join("test", "compat")},
		Output: "dist/index.js",
		Runs:   [][]string{{"run", "build"}, {"run", "check"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/*.test.mjs files (%v)", err)
	}
	args := append([]string{"--test", "--test-reporter=spec"}, files...)
	nodetest.RunNode(t, context.Background(), 100*time.Second, []string{"SYNCPLANE_BIN=" + bin, "NO_COLOR=1"}, args...)
}
