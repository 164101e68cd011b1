package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPluginVerify builds the example plugin and verifies it through a
// tenant folder: a matching checksum passes the handshake and Info, a
// mismatch and a missing file fail.
func TestPluginVerify(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "kanban")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kanban-rules")
	build := exec.Command("go", "build", "-o", bin, "../../plugins/kanban-rules")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sum, err := fileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	manifest := func(sha string) {
		src := "id: kanban\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: X\nvalidator:\n  command: kanban-rules\n  sha256: " + sha + "\n"
		if err := os.WriteFile(filepath.Join(dir, "tenant.yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := func(string) string { return "" }
	manifest(sum)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"plugin", "verify", "--tenants", root, "--tenant", "kanban"}, env, &out, &out); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `name "kanban-rules" version "1.0.0"`) {
		t.Errorf("verify output: %s", out.String())
	}
	manifest(strings.Repeat("0", 64))
	if err := run(context.Background(), []string{"plugin", "verify", "--tenants", root, "--tenant", "kanban"}, env, &out, &out); err == nil || !strings.Contains(err.Error(), "the manifest says") {
		t.Errorf("verify with a wrong sha256: %v", err)
	}
	if err := run(context.Background(), []string{"plugin", "verify", "--tenants", root, "--tenant", "nope"}, env, &out, &out); err == nil {
		t.Error("verify of an unknown tenant: no error")
	}
}
