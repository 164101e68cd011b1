package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

// TestPublicKeyTenants: tenants that verify RS256, ES256 and EdDSA tokens
// from a PEM public key or a JWKS file accept their own tokens and refuse
// others, end to end over HTTP.
func TestPublicKeyTenants(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	root := t.TempDir()
	writeKeyTenant := func(id, authYAML string, files map[string][]byte) {
		dir := filepath.Join(root, id)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.CopyFS(filepath.Join(dir, "prisma"), os.DirFS(testkit.KanbanDir(t))))
		for name, b := range files {
			must(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
		}
		must(t, os.WriteFile(filepath.Join(dir, tenant.ManifestFile), []byte("id: "+id+"\nschema: prisma\nauth:\n"+authYAML), 0o644))
	}
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		must(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes()),
	}}})
	// rsa-pem and rsa-jwks share a key: each needs an audience of its own.
	writeKeyTenant("rsa-pem", "  publicKeyFile: key.pem\n  audience: rsa-pem\n", map[string][]byte{"key.pem": pemOf(&rsaKey.PublicKey)})
	writeKeyTenant("ec-pem", "  publicKeyFile: key.pem\n", map[string][]byte{"key.pem": pemOf(&ecKey.PublicKey)})
	writeKeyTenant("ed-pem", "  publicKeyFile: key.pem\n  issuer: https://idp.example\n", map[string][]byte{"key.pem": pemOf(edPub)})
	writeKeyTenant("rsa-jwks", "  jwksFile: jwks.json\n  audience: syncplane\n", map[string][]byte{"jwks.json": jwks})

	db := storetest.Databases(t)[0]
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: db.Open(t), Log: quietLog()})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(httpapi.New(reg, quietLog()))
	t.Cleanup(srv.Close)

	sign := func(method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
		claims["sub"] = "pk-u"
		claims["exp"] = time.Now().Add(time.Hour).Unix()
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		must(t, err)
		return s
	}
	tests := map[string]struct {
		tenant, token string
		want          int
	}{
		"tenant=rsa-pem/token=rs256":           {"rsa-pem", sign(jwt.SigningMethodRS256, rsaKey, "", jwt.MapClaims{"aud": "rsa-pem"}), 200},
		"tenant=rsa-pem/token=other-key":       {"rsa-pem", sign(jwt.SigningMethodRS256, otherRSA, "", jwt.MapClaims{"aud": "rsa-pem"}), 401},
		"tenant=rsa-pem/token=for-rsa-jwks":    {"rsa-pem", sign(jwt.SigningMethodRS256, rsaKey, "k1", jwt.MapClaims{"aud": "syncplane"}), 401},
		"tenant=ec-pem/token=es256":            {"ec-pem", sign(jwt.SigningMethodES256, ecKey, "", jwt.MapClaims{}), 200},
		"tenant=ec-pem/token=rs256":            {"ec-pem", sign(jwt.SigningMethodRS256, rsaKey, "", jwt.MapClaims{}), 401},
		"tenant=ed-pem/token=eddsa":            {"ed-pem", sign(jwt.SigningMethodEdDSA, edKey, "", jwt.MapClaims{"iss": "https://idp.example"}), 200},
		"tenant=ed-pem/token=eddsa-wrong-iss":  {"ed-pem", sign(jwt.SigningMethodEdDSA, edKey, "", jwt.MapClaims{"iss": "https://evil.example"}), 401},
		"tenant=rsa-jwks/token=rs256-kid":      {"rsa-jwks", sign(jwt.SigningMethodRS256, rsaKey, "k1", jwt.MapClaims{"aud": "syncplane"}), 200},
		"tenant=rsa-jwks/token=unknown-kid":    {"rsa-jwks", sign(jwt.SigningMethodRS256, rsaKey, "k9", jwt.MapClaims{"aud": "syncplane"}), 401},
		"tenant=rsa-jwks/token=wrong-audience": {"rsa-jwks", sign(jwt.SigningMethodRS256, rsaKey, "k1", jwt.MapClaims{"aud": "other"}), 401},
		"tenant=rsa-jwks/token=hs256-confused": {"rsa-jwks", sign(jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), "k1", jwt.MapClaims{"aud": "syncplane"}), 401},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, body, _ := post(t, srv.URL+"/v1/tenants/"+tc.tenant+"/pull", tc.token, map[string]any{})
			if code != tc.want {
				t.Errorf("status %d, want %d: %s", code, tc.want, body)
			}
			if tc.want == http.StatusOK {
				code, body, _ = post(t, srv.URL+"/v1/tenants/"+tc.tenant+"/push", tc.token, map[string]any{"events": []any{ev("", "User", "create", user("pk-u"))}})
				if code != 200 {
					t.Errorf("push: %d %s", code, body)
				}
			}
		})
	}
}
