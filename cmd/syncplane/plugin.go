package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/tenant"
)

// pluginCmd is "syncplane plugin hash FILE" and "syncplane plugin verify".
func (c *cli) pluginCmd() *cobra.Command {
	cmd := groupCmd("plugin", "Hash a validator plugin executable, or verify a tenant's plugin")
	hash := &cobra.Command{
		Use:   "hash FILE",
		Short: "Print the sha256 of a plugin executable, as a manifest's validator.sha256 takes it",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("plugin hash: want exactly one FILE")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			sum, err := fileSHA256(args[0])
			if err != nil {
				return fmt.Errorf("plugin hash: %w", err)
			}
			fmt.Fprintln(c.stdout, sum)
			return nil
		},
	}
	var id, dir string
	verify := &cobra.Command{
		Use:   "verify --tenant T",
		Short: "Check a tenant's validator plugin as the server runs it: file, sha256, handshake",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return pluginVerify(cmd.Context(), tenantsDir(dir, c.getenv), id, c.getenv, c.stdout)
		},
	}
	verify.Flags().SortFlags = false
	verify.Flags().StringVar(&id, "tenant", "", "tenant id")
	verify.Flags().StringVar(&dir, "tenants", "", "tenants directory (env SYNCPLANE_TENANTS_DIR)")
	cmd.AddCommand(hash, verify)
	return cmd
}

// fileSHA256 is the lowercase hex sha256 of a file, the form a manifest's
// validator.sha256 takes.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pluginVerify checks a tenant's validator plugin the way the server will
// run it: the file exists, its sha256 matches the manifest, and it
// completes the handshake and answers Info.
func pluginVerify(ctx context.Context, root, id string, getenv func(string) string, stdout io.Writer) error {
	if root == "" || id == "" {
		return errors.New("plugin verify: --tenant and --tenants (or SYNCPLANE_TENANTS_DIR) are required")
	}
	dirs, err := tenant.Dirs(root)
	if err != nil {
		return fmt.Errorf("plugin verify: %w", err)
	}
	for _, d := range dirs {
		f, err := tenant.OpenFolder(d, getenv)
		if err != nil || f.Manifest.ID != id {
			continue
		}
		mpath := f.Manifest.File()
		cfg, err := f.ValidatorConfig()
		if errors.Is(err, tenant.ErrNoValidator) {
			return fmt.Errorf("plugin verify: tenant %s has no validator", id)
		}
		if err != nil {
			return err
		}
		command := cfg.Command
		sum, err := fileSHA256(command)
		if err != nil {
			return fmt.Errorf("plugin verify: %s: %w", mpath, err)
		}
		if sum != cfg.SHA256 {
			return fmt.Errorf("plugin verify: %s: %s has sha256 %s, the manifest says %s", mpath, command, sum, cfg.SHA256)
		}
		fmt.Fprintf(stdout, "ok file %s sha256 %s\n", command, sum)
		host := pluginhost.New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		defer host.Close()
		name, version, caps, err := host.Info(ctx)
		if err != nil {
			return fmt.Errorf("plugin verify: %s: %w", command, err)
		}
		fmt.Fprintf(stdout, "ok handshake; info: name %q version %q capabilities %v\n", name, version, caps)
		return nil
	}
	return fmt.Errorf("plugin verify: no tenant %q under %s", id, root)
}
