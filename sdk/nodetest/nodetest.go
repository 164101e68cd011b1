//go:build unix

package nodetest

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

// Missing skips t for want of something the test needs (msg says what), or
// fails it when the environment variable requireEnv is "1". With requireEnv
// "" it always skips.
func Missing(t testing.TB, requireEnv, msg string) {
	t.Helper()
	switch {
	case requireEnv == "":
		t.Skip(msg)
	case os.Getenv(requireEnv) == "1":
		t.Fatalf("%s, and %s=1", msg, requireEnv)
	default:
		t.Skipf("%s: skipping (set %s=1 to fail instead)", msg, requireEnv)
	}
}

// RequireNode calls Missing unless node and npm are on PATH; why says what
// needs them ("the TypeScript kit's tests need Node.js 20+ and npm").
func RequireNode(t testing.TB, requireEnv, why string) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, requireEnv, fmt.Sprintf("%s not found: %s", tool, why))
		}
	}
}

// Step is one stage of readying a Node.js package folder: npm runs it when
// the hash of its inputs differs from the one its stamp records, or when its
// output is missing. Paths are relative to the folder.
type Step struct {
	Stamp  string     // records the hash of Inputs the step last ran for
	Inputs []string   // files and directories the step depends on; a missing one counts as empty
	Output string     // a file the step makes: missing, it runs again ("": none)
	Runs   [][]string // npm arguments, run in order
}

// CI is the `npm ci` step: it runs when node_modules does not match
// package.json, package-lock.json and .npmrc, and keeps its stamp in
// node_modules (so that `npm pack` never ships it and a fresh install
// re-runs the steps stamped there too).
func CI() Step {
	return Step{
		Stamp:  "node_modules/.syncplane-stamp",
		Inputs: []string{"package.json", "package-lock.json", ".npmrc"},
		Output: "node_modules/.package-lock.json", // npm writes it on every install
		Runs:   [][]string{{"ci", "--no-audit", "--no-fund"}},
	}
}

// Npm runs the steps in dir that are out of date, in order, and records
// their stamps. What they make stays in the folder (git-ignored) for the
// next run; a lock file, .build.lock, keeps concurrent test binaries from
// building at once. npm runs in its own process group, killed when ctx ends.
func Npm(ctx context.Context, dir string, steps ...Step) error {
	lockPath := filepath.Join(dir, ".build.lock")
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }() // released on close anyway

	for _, s := range steps {
		sum, err := hashInputs(dir, s.Inputs)
		if err != nil {
			return err
		}
		stamp := filepath.Join(dir, s.Stamp)
		if old, err := os.ReadFile(stamp); err == nil && string(old) == sum {
			if s.Output == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, s.Output)); err == nil {
				continue
			}
		}
		for _, args := range s.Runs {
			cmd := exec.CommandContext(ctx, "npm", args...)
			cmd.Dir = dir
			killGroupOnCancel(cmd, 5*time.Second)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		if err := os.WriteFile(stamp, []byte(sum), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hashInputs hashes the names (relative to dir) and contents of the files
// under paths.
func hashInputs(dir string, paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		root := filepath.Join(dir, p)
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if errors.Is(err, os.ErrNotExist) && path == root {
				return nil // an optional input (.npmrc)
			}
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			name, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", name, len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ModuleRoot returns the root folder of syncplane's module (go env GOMOD).
func ModuleRoot(t testing.TB, ctx context.Context) string {
	t.Helper()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}

// BuildSyncplane builds ./cmd/syncplane, with -race when race is true (pass
// Race to follow `go test -race`), into a temporary directory of t and
// returns the binary's path. Node tests do not import the server's
// packages; they talk to the binary over HTTP.
func BuildSyncplane(t testing.TB, ctx context.Context, race bool) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "syncplane")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/syncplane")...)
	cmd.Dir = ModuleRoot(t, ctx)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/syncplane: %v\n%s", err, out)
	}
	return bin
}

// RunNode runs `node args...` in the current directory with env added to
// the test's environment, and fails t with node's output when node fails;
// otherwise it logs the output (shown with -v). node runs in its own
// process group: when timeout passes or ctx ends, the whole group (node and
// the servers and browsers it started) is killed.
func RunNode(t testing.TB, ctx context.Context, timeout time.Duration, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Env = append(os.Environ(), env...)
	killGroupOnCancel(cmd, 10*time.Second)
	name := "node"
	if len(args) > 0 {
		name += " " + args[0]
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	t.Logf("%s:\n%s", name, out)
}

// killGroupOnCancel runs cmd in its own process group and kills the whole
// group when cmd's context ends; waitDelay bounds the wait for its output
// pipes after that.
func killGroupOnCancel(cmd *exec.Cmd, waitDelay time.Duration) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
}
