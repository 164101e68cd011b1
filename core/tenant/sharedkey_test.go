package tenant_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// sharedKeyTenant is a tenant folder verifying with key (a file named
// key.pem, or the HS256 secret), with audience aud ("" for none).
func sharedKeyTenant(id, keyLine, keyFile, key, aud string) map[string]string {
	extra := ""
	if aud != "" {
		extra = "  audience: " + aud + "\n"
	}
	m := "id: " + id + "\nschema: schema.prisma\nrootModel: User\nauth:\n  " + keyLine + "\n" + extra
	return map[string]string{tenant.ManifestFile: m, "schema.prisma": kanban, keyFile: key}
}

// TestLoadDirSharedKey: two tenants verifying with one key (a secret, or a
// public key in any form) must both set distinct audiences; the later one
// is refused otherwise, and a token for one is never good for the other
// (issue 9, finding 8).
func TestLoadDirSharedKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		root := t.TempDir()
		hs := func(id, key, aud string) map[string]string {
			return sharedKeyTenant(id, "hs256SecretFile: secret", "secret", key, aud)
		}
		keyOf := func(pair string) string { return "secret-of-pair-" + pair + "-0123456789abcdef0123456789" }
		pemKey := ed25519PEM(t)
		folders := map[string]map[string]string{
			"a1": hs("a1", keyOf("a"), ""), "a2": hs("a2", keyOf("a"), ""), // no audiences: a2 refused
			"b1": hs("b1", keyOf("b"), "app-b"), "b2": hs("b2", keyOf("b"), "app-b"), // the same audience: b2 refused
			"c1": hs("c1", keyOf("c"), "app-c1"), "c2": hs("c2", keyOf("c"), "app-c2"), // distinct audiences: both serve
			"d1": hs("d1", keyOf("d"), "app-d"), "d2": hs("d2", keyOf("d"), ""), // one without: d2 refused
			// The same public key as a PEM file and in a JWKS.
			"e1": sharedKeyTenant("e1", "publicKeyFile: key.pem", "key.pem", pemKey, ""),
			"e2": sharedKeyTenant("e2", "jwksFile: jwks.json", "jwks.json", jwksOf(t, pemKey), ""),
		}
		for name, files := range folders {
			writeFiles(t, filepath.Join(root, name), files)
		}

		opt := tenant.Options{Store: db.Open(t), Log: quietLog()}
		reg, errs := tenant.LoadDir(context.Background(), root, opt)
		if diff := cmp.Diff([]string{"a1", "b1", "c1", "c2", "d1", "e1"}, reg.IDs()); diff != "" {
			t.Errorf("loaded tenants (-want +got):\n%s", diff)
		}
		var got []string
		for _, err := range errs {
			got = append(got, strings.ReplaceAll(err.Error(), root+string(filepath.Separator), ""))
		}
		want := []string{
			"a2/tenant.yaml: tenant a2 verifies tokens with a key of tenant a1: set auth.audience in both manifests, to distinct values, so that neither accepts the other's tokens",
			`b2/tenant.yaml: tenant b2 verifies tokens with a key of tenant b1 and the same auth.audience "app-b": give each its own audience, so that neither accepts the other's tokens`,
			"d2/tenant.yaml: tenant d2 verifies tokens with a key of tenant d1: set auth.audience in both manifests, to distinct values, so that neither accepts the other's tokens",
			"e2/tenant.yaml: tenant e2 verifies tokens with a key of tenant e1: set auth.audience in both manifests, to distinct values, so that neither accepts the other's tokens",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}

		// c1 and c2 share a secret and are told apart by their audiences.
		tok, err := auth.SignHS256([]byte(keyOf("c")), auth.SignClaims{Subject: "u1", Audience: "app-c1", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Get("c1").Verifier.Verify(tok); err != nil {
			t.Errorf("c1 refuses its own token: %v", err)
		}
		if _, err := reg.Get("c2").Verifier.Verify(tok); err == nil {
			t.Error("c2 accepts a token for c1")
		}
	})
}

// TestReloadSharedKey: on a reload, a running tenant keeps its key; a
// tenant that now claims the key of another is refused and keeps serving
// its last good version, until both set distinct audiences.
func TestReloadSharedKey(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, db storetest.DB) {
		ctx := context.Background()
		root := t.TempDir()
		hs := func(id, key, aud string) {
			writeFiles(t, filepath.Join(root, id), sharedKeyTenant(id, "hs256SecretFile: secret", "secret", key, aud))
		}
		hs("x", secret, "")
		hs("y", otherSecret, "")
		opt := tenant.Options{Store: db.Open(t), Log: quietLog()}
		reg, errs := tenant.LoadDir(ctx, root, opt)
		if len(errs) != 0 || len(reg.IDs()) != 2 {
			t.Fatalf("load: %v, tenants %v", errs, reg.IDs())
		}
		x := reg.Get("x")

		// x takes y's secret: x is refused (though it sorts first) and
		// keeps serving with its own.
		hs("x", otherSecret, "")
		errs = tenant.Reload(ctx, reg, root, opt)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "tenant x verifies tokens with a key of tenant y") {
			t.Fatalf("reload: %v", errs)
		}
		if reg.Get("x") != x || reg.Get("y") == nil {
			t.Errorf("after the refused reload: x replaced %v, tenants %v", reg.Get("x") != x, reg.IDs())
		}

		// Distinct audiences on both: x's new version serves.
		hs("x", otherSecret, "app-x")
		hs("y", otherSecret, "app-y")
		if errs := tenant.Reload(ctx, reg, root, opt); len(errs) != 0 {
			t.Fatalf("reload with audiences: %v", errs)
		}
		if reg.Get("x") == x || reg.Get("x").Manifest.Auth.Audience != "app-x" {
			t.Error("x's version with an audience was not swapped in")
		}
	})
}

// jwksOf is a JWKS holding the Ed25519 public key of pemKey.
func jwksOf(t *testing.T, pemKey string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(pemKey))
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	x := base64.RawURLEncoding.EncodeToString(key.(ed25519.PublicKey))
	b, err := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "use": "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
