//go:build unix

// Package typescript_test runs the TypeScript client kit's tests
// (@syncplane/client, in this folder) from `go test ./...`: it builds
// ./cmd/syncplane, installs and builds the kit with npm, and runs
// `node --test` against real `syncplane serve` processes that the node
// tests start with the built binary.
package typescript_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKit runs the kit's node tests. Without node or npm it skips, unless
// SYNCPLANE_TEST_REQUIRE_NODE=1 (then it fails).
func TestKit(t *testing.T) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("SYNCPLANE_TEST_REQUIRE_NODE") == "1" {
				t.Fatalf("%s not found, and SYNCPLANE_TEST_REQUIRE_NODE=1: the TypeScript kit's tests need Node.js 20+ and npm", tool)
			}
			t.Skipf("%s not found: the TypeScript kit's tests need Node.js 20+ and npm (set SYNCPLANE_TEST_REQUIRE_NODE=1 to fail instead)", tool)
		}
	}
	// Compiling the server and installing npm packages on a cold cache may
	// take minutes on a loaded machine; the node tests themselves take
	// seconds and get a budget of their own.
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelBuild()
	bin := buildServer(t, buildCtx)
	if err := build(buildCtx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	files, err := filepath.Glob(filepath.Join("test", "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/*.test.mjs files (%v)", err)
	}
	args := append([]string{"--test", "--test-reporter=spec"}, files...)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Env = append(os.Environ(), "SYNCPLANE_BIN="+bin, "NO_COLOR=1")
	killGroupOnCancel(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("node --test:\n%s", out)
	}
}

// buildServer builds ./cmd/syncplane from the repository root (this
// folder's module) into a temporary directory. The kit does not import
// the server's packages; it talks to the binary over HTTP.
func buildServer(t *testing.T, ctx context.Context) string {
	t.Helper()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(t.TempDir(), "syncplane")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/syncplane")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/syncplane: %v\n%s", err, out)
	}
	return bin
}

// killGroupOnCancel runs cmd in its own process group and kills the whole
// group (node and the syncplane servers it started) when ctx ends.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
}

// build runs `npm ci` when node_modules does not match package.json and
// package-lock.json, and `npm run build` plus `npm run check` (the type
// test against prisma-idb's generated types) when dist/ does not match the
// sources. Both results stay in the folder (git-ignored) for the next run; a
// lock file keeps concurrent test binaries from building at once. Both stamps
// live in node_modules, so that `npm pack` never ships one and a fresh
// `npm ci` rebuilds dist/ too.
func build(ctx context.Context) error {
	lock, err := os.OpenFile(".build.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock .build.lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }() // released on close anyway

	steps := []struct {
		stamp  string     // records the hash of inputs the steps last ran for
		inputs []string   // files and directories the steps depend on
		output string     // a file the steps make: missing, they run again
		runs   [][]string // npm arguments
	}{
		{"node_modules/.syncplane-stamp", []string{"package.json", "package-lock.json", ".npmrc"},
			"node_modules/typescript/package.json", [][]string{{"ci"}}},
		{"node_modules/.syncplane-build-stamp", []string{"package.json", "package-lock.json", "tsconfig.json", "src", filepath.Join("test", "compat")},
			"dist/index.js", [][]string{{"run", "build"}, {"run", "check"}}},
	}
	for _, s := range steps {
		sum, err := hashInputs(s.inputs)
		if err != nil {
			return err
		}
		if old, err := os.ReadFile(s.stamp); err == nil && string(old) == sum {
			if _, err := os.Stat(s.output); err == nil {
				continue
			}
		}
		for _, args := range s.runs {
			cmd := exec.CommandContext(ctx, "npm", args...)
			killGroupOnCancel(cmd)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		if err := os.WriteFile(s.stamp, []byte(sum), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hashInputs hashes the names and contents of the files under paths.
func hashInputs(paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if errors.Is(err, os.ErrNotExist) && path == p {
				return nil // an optional input (.npmrc)
			}
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
