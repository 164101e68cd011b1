package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginHash(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "validator")
	if err := os.WriteFile(file, []byte("hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"plugin", "hash", file}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	// sha256 of "hello\n"
	if got, want := strings.TrimSpace(out.String()), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"; got != want {
		t.Errorf("hash = %s, want %s", got, want)
	}
	for _, args := range [][]string{{"plugin"}, {"plugin", "hash"}, {"plugin", "hash", filepath.Join(t.TempDir(), "missing")}, {"plugin", "frob"}} {
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
