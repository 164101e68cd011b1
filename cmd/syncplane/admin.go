package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/syncplane/syncplane/core/admin"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/tenant"
)

// adminToken is the admin API's bearer token: SYNCPLANE_ADMIN_TOKEN, or
// the first line of the file SYNCPLANE_ADMIN_TOKEN_FILE; "" when neither
// is set (no admin API).
func adminToken(getenv func(string) string) (string, error) {
	if t := getenv("SYNCPLANE_ADMIN_TOKEN"); t != "" {
		return t, nil
	}
	f := getenv("SYNCPLANE_ADMIN_TOKEN_FILE")
	if f == "" {
		return "", nil
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("SYNCPLANE_ADMIN_TOKEN_FILE: %w", err)
	}
	t, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(t), nil
}

// withAdminAPI mounts the admin API on the admin handler when a token is
// configured (README, "Admin API"). opt loads a tenant again for its
// reload; without a tenants directory there is nothing to reload.
func withAdminAPI(h http.Handler, getenv func(string) string, reg *tenant.Registry, st *store.Store, opt *tenant.Options, log *slog.Logger) (http.Handler, error) {
	tok, err := adminToken(getenv)
	if err != nil || tok == "" {
		return h, err
	}
	var reload func(ctx context.Context, id string) error
	if opt != nil {
		reload = func(ctx context.Context, id string) error { return reg.ReloadTenant(ctx, id, *opt) }
	}
	api, err := admin.New(admin.Options{Tenants: reg, Store: st, Token: tok, Reload: reload, Log: log.With("component", "admin")})
	if err != nil {
		return nil, fmt.Errorf("SYNCPLANE_ADMIN_TOKEN / SYNCPLANE_ADMIN_TOKEN_FILE: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", api)
	mux.Handle("/", h)
	return mux, nil
}
