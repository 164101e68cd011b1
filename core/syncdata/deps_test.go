package syncdata_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoDatabaseDependencies: push, pull, the plugin host and the packages
// they share with the storage reach no database driver, no bun and not
// core/store, directly or through another package.
func TestNoDatabaseDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list dependencies with")
		}
	}
	pkgs := []string{"./core/syncdata", "./core/push", "./core/pull", "./core/pluginhost",
		"./core/changelog", "./core/schema", "./core/scope"}
	forbidden := []string{"github.com/jackc/pgx", "modernc.org/sqlite", "modernc.org/libc",
		"github.com/uptrace/bun", "github.com/syncplane/syncplane/core/store"}
	// push, pull and the plugin host do not import each other either.
	apart := map[string][]string{
		"./core/push":       {"core/pull", "core/pluginhost"},
		"./core/pull":       {"core/push", "core/pluginhost"},
		"./core/pluginhost": {"core/push", "core/pull"},
	}
	for _, pkg := range pkgs {
		forbidden := forbidden
		for _, p := range apart[pkg] {
			forbidden = append(forbidden[:len(forbidden):len(forbidden)], "github.com/syncplane/syncplane/"+p)
		}
		cmd := exec.Command(goTool, "list", "-deps", pkg)
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
