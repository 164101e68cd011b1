package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/syncplane/syncplane/core/auth"
)

const (
	testIss = "https://auth.acme.example"
	testAud = "syncplane"
)

var secret = []byte("0123456789abcdef0123456789abcdef-acme")

type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec, ec2   *ecdsa.PrivateKey
	ed, ed2   ed25519.PrivateKey
}

// keys generates the test keys once per test binary.
var keys = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	_, k.ed2, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

func pemPublic(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(t *testing.T, kid string, k *ecdsa.PublicKey) map[string]any {
	t.Helper()
	e, err := k.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	point := e.Bytes() // 0x04 || X || Y
	size := (len(point) - 1) / 2
	crv := k.Curve.Params().Name
	return map[string]any{"kty": "EC", "kid": kid, "crv": crv,
		"x": b64(point[1 : 1+size]), "y": b64(point[1+size:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
}

func jwksDoc(t *testing.T, ks ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": ks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claims returns valid claims for subject u1, changed by mods.
func claims(mods ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "u1",
		"iss": testIss,
		"aud": testAud,
		"iat": time.Now().Unix(),
		"exp": time.Now().Add(time.Hour).Unix(),
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func set(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
func del(k string) func(jwt.MapClaims)        { return func(c jwt.MapClaims) { delete(c, k) } }
func rel(d time.Duration) int64               { return time.Now().Add(d).Unix() }

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func newVerifier(t *testing.T, cfg auth.Config) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// check verifies token and compares with want (subject) or wantErr (a
// substring of the error message).
func check(t *testing.T, v *auth.Verifier, token, want, wantErr string) {
	t.Helper()
	got, err := v.Verify(token)
	if wantErr != "" {
		if err == nil {
			t.Fatalf("Verify succeeded with subject %q, want error containing %q", got.Subject, wantErr)
		}
		if !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("error %v does not wrap ErrInvalidToken", err)
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Errorf("error %q does not contain %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != want {
		t.Errorf("Subject = %q, want %q", got.Subject, want)
	}
}

func TestVerifyHS256(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Config{Issuer: testIss, Audience: testAud, HS256Secret: secret})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }
	good := hs(claims())
	parts := strings.Split(good, ".")
	otherPayload := strings.Split(hs(claims(set("sub", "admin"))), ".")[1]

	tests := map[string]struct {
		token   string
		want    string
		wantErr string
	}{
		"good":                  {token: good, want: "u1"},
		"aud-list":              {token: hs(claims(set("aud", []string{"other", testAud}))), want: "u1"},
		"no-iat":                {token: hs(claims(del("iat"))), want: "u1"},
		"expired-in-leeway":     {token: hs(claims(set("exp", rel(-10*time.Second)))), want: "u1"},
		"nbf-in-leeway":         {token: hs(claims(set("nbf", rel(10*time.Second)))), want: "u1"},
		"nbf-past":              {token: hs(claims(set("nbf", rel(-time.Minute)))), want: "u1"},
		"expired":               {token: hs(claims(set("exp", rel(-time.Hour)))), wantErr: "invalid token: expired"},
		"nbf-in-future":         {token: hs(claims(set("nbf", rel(time.Hour)))), wantErr: "invalid token: not yet valid"},
		"wrong-iss":             {token: hs(claims(set("iss", "https://evil.example"))), wantErr: "invalid token: wrong issuer"},
		"missing-iss":           {token: hs(claims(del("iss"))), wantErr: "invalid token: missing iss"},
		"wrong-aud":             {token: hs(claims(set("aud", "other"))), wantErr: "invalid token: wrong audience"},
		"missing-aud":           {token: hs(claims(del("aud"))), wantErr: "invalid token: missing aud"},
		"expired-wrong-iss":     {token: hs(claims(set("exp", rel(-time.Hour)), set("iss", "x"))), wantErr: "invalid token: expired, wrong issuer"},
		"bad-signature":         {token: sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"), "", claims()), wantErr: "invalid token: bad signature"},
		"tampered-payload":      {token: parts[0] + "." + otherPayload + "." + parts[2], wantErr: "invalid token: bad signature"},
		"missing-sub":           {token: hs(claims(del("sub"))), wantErr: "invalid token: missing sub"},
		"empty-sub":             {token: hs(claims(set("sub", ""))), wantErr: "invalid token: missing sub"},
		"sub-not-string":        {token: hs(claims(set("sub", 42))), wantErr: "invalid token: sub is not a string"},
		"sub-with-NUL":          {token: hs(claims(set("sub", "u1\x00"))), wantErr: "invalid token: sub must not contain the NUL character (U+0000)"},
		"sub-not-UTF-8":         {token: rawHS256(t, secret, `{"sub":"u`+"\xff"+`1","iss":"`+testIss+`","aud":"`+testAud+`","exp":`+fmt.Sprint(rel(time.Hour))+`}`), wantErr: "invalid token: sub is not valid UTF-8"},
		"other-claim-not-UTF-8": {token: rawHS256(t, secret, `{"sub":"u1","name":"`+"\xff"+`","iss":"`+testIss+`","aud":"`+testAud+`","exp":`+fmt.Sprint(rel(time.Hour))+`}`), want: "u1"},
		"missing-exp":           {token: hs(claims(del("exp"))), wantErr: "invalid token: missing exp"},
		"exp-not-number":        {token: hs(claims(set("exp", "tomorrow"))), wantErr: "wrong type"},
		"alg-none":              {token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims()), wantErr: `invalid token: algorithm "none" not allowed`},
		"alg-HS512":             {token: sign(t, jwt.SigningMethodHS512, secret, "", claims()), wantErr: `invalid token: algorithm "HS512" not allowed`},
		"alg-unknown":           {token: b64([]byte(`{"alg":"XX99","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], wantErr: `algorithm "XX99" not allowed`},
		"alg-missing":           {token: b64([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], wantErr: "invalid token: missing alg"},
		"malformed":             {token: "not-a-token", wantErr: "invalid token: malformed"},
		"malformed-segments":    {token: good + ".x", wantErr: "invalid token: malformed"},
		"malformed-json":        {token: b64([]byte("{")) + "." + parts[1] + "." + parts[2], wantErr: "invalid token: malformed"},
		"empty":                 {token: "", wantErr: "invalid token: empty token"},
		"too-long":              {token: strings.Repeat("a", 17<<10), wantErr: "invalid token: token longer than"},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			check(t, v, tc.token, tc.want, tc.wantErr)
		})
	}
}

// rawHS256 signs payload as it is: its bytes need not be valid UTF-8,
// which no JSON encoder would write.
func rawHS256(t *testing.T, secret []byte, payload string) string {
	t.Helper()
	unsigned := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, secret)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + b64(sig)
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	tok := sign(t, jwt.SigningMethodHS256, secret, "", claims(set("exp", rel(-10*time.Second))))
	for name, tc := range map[string]struct {
		leeway  time.Duration
		wantErr string
	}{
		"zero-means-default":  {0, ""},
		"negative-means-none": {-1, "invalid token: expired"},
		"smaller":             {5 * time.Second, "invalid token: expired"},
		"larger":              {time.Minute, ""},
	} {
		t.Run("leeway="+name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t, auth.Config{HS256Secret: secret, Leeway: tc.leeway})
			check(t, v, tok, "u1", tc.wantErr)
		})
	}
}

func TestVerifyNoIssuerAudienceConfigured(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Config{HS256Secret: secret})
	check(t, v, sign(t, jwt.SigningMethodHS256, secret, "", claims(del("iss"), del("aud"))), "u1", "")
	check(t, v, sign(t, jwt.SigningMethodHS256, secret, "", claims(set("iss", "any"), set("aud", "any"))), "u1", "")
	check(t, v, sign(t, jwt.SigningMethodHS256, secret, "", claims(del("exp"))), "", "invalid token: missing exp")
}

func TestVerifyAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	k := keys()
	pubPEM := pemPublic(t, &k.rsa.PublicKey)
	// The classic attack: sign HS256 with the public key bytes as secret.
	forged := sign(t, jwt.SigningMethodHS256, pubPEM, "", claims())
	forgedKID := sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", claims())

	pemV := newVerifier(t, auth.Config{Issuer: testIss, Audience: testAud, PublicKeyPEM: pubPEM})
	check(t, pemV, forged, "", `invalid token: algorithm "HS256" not allowed (want RS256)`)

	jwksV := newVerifier(t, auth.Config{Issuer: testIss, Audience: testAud, JWKS: jwksDoc(t, rsaJWK("rsa-1", &k.rsa.PublicKey))})
	check(t, jwksV, forgedKID, "", `invalid token: algorithm "HS256" not allowed`)

	// An RS256 token against an HS256 verifier is refused as well.
	hsV := newVerifier(t, auth.Config{HS256Secret: secret})
	check(t, hsV, sign(t, jwt.SigningMethodRS256, k.rsa, "", claims()), "", `algorithm "RS256" not allowed (want HS256)`)
	// A key type that is not configured: ES256 against an RSA key.
	check(t, pemV, sign(t, jwt.SigningMethodES256, k.ec, "", claims()), "", `algorithm "ES256" not allowed`)
	// PS256 uses an RSA key too but is not the configured algorithm.
	check(t, pemV, sign(t, jwt.SigningMethodPS256, k.rsa, "", claims()), "", `algorithm "PS256" not allowed`)
}

func TestVerifyAsymmetric(t *testing.T) {
	t.Parallel()
	k := keys()
	type alg struct {
		method     jwt.SigningMethod
		priv, evil any // signing key; a key of the same type the verifier does not know
		pub        any
		jwk        map[string]any
	}
	algs := map[string]alg{
		"RS256": {jwt.SigningMethodRS256, k.rsa, k.rsa2, &k.rsa.PublicKey, rsaJWK("kid-rs", &k.rsa.PublicKey)},
		"ES256": {jwt.SigningMethodES256, k.ec, k.ec2, &k.ec.PublicKey, ecJWK(t, "kid-es", &k.ec.PublicKey)},
		"EdDSA": {jwt.SigningMethodEdDSA, k.ed, k.ed2, k.ed.Public(), edJWK("kid-ed", k.ed.Public().(ed25519.PublicKey))},
	}
	for name, a := range algs {
		kid := a.jwk["kid"].(string)
		sources := map[string]auth.Config{
			"pem":  {PublicKeyPEM: pemPublic(t, a.pub)},
			"jwks": {JWKS: jwksDoc(t, a.jwk)},
		}
		for src, cfg := range sources {
			cfg.Issuer, cfg.Audience = testIss, testAud
			v := newVerifier(t, cfg)
			tests := map[string]struct{ token, wantErr string }{
				"good":          {token: sign(t, a.method, a.priv, kid, claims())},
				"good-no-kid":   {token: sign(t, a.method, a.priv, "", claims())},
				"bad-signature": {token: sign(t, a.method, a.evil, kid, claims()), wantErr: "invalid token: bad signature"},
				"expired":       {token: sign(t, a.method, a.priv, kid, claims(set("exp", rel(-time.Hour)))), wantErr: "invalid token: expired"},
				"wrong-aud":     {token: sign(t, a.method, a.priv, kid, claims(set("aud", "x"))), wantErr: "invalid token: wrong audience"},
				"alg-none":      {token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims()), wantErr: `algorithm "none" not allowed`},
				"hs256-with-pem": {
					token:   sign(t, jwt.SigningMethodHS256, pemPublic(t, a.pub), kid, claims()),
					wantErr: `algorithm "HS256" not allowed (want ` + name + ")",
				},
			}
			if src == "jwks" {
				tests["unknown-kid"] = struct{ token, wantErr string }{
					sign(t, a.method, a.priv, "nope", claims()), `invalid token: unknown key id "nope"`,
				}
			}
			for tname, tc := range tests {
				t.Run(fmt.Sprintf("alg=%s/source=%s/case=%s", name, src, tname), func(t *testing.T) {
					t.Parallel()
					check(t, v, tc.token, "u1", tc.wantErr)
				})
			}
		}
	}
}

func TestVerifyMixedJWKS(t *testing.T) {
	t.Parallel()
	k := keys()
	doc := jwksDoc(t,
		rsaJWK("rs", &k.rsa.PublicKey),
		ecJWK(t, "es", &k.ec.PublicKey),
		edJWK("ed", k.ed.Public().(ed25519.PublicKey)),
		// An encryption key is ignored, not refused.
		map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": b64(k.rsa2.N.Bytes()), "e": "AQAB"},
	)
	v := newVerifier(t, auth.Config{JWKS: doc})
	tests := map[string]struct{ token, wantErr string }{
		"rs":           {token: sign(t, jwt.SigningMethodRS256, k.rsa, "rs", claims())},
		"es":           {token: sign(t, jwt.SigningMethodES256, k.ec, "es", claims())},
		"ed":           {token: sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims())},
		"no-kid":       {token: sign(t, jwt.SigningMethodES256, k.ec, "", claims())},
		"no-kid-evil":  {token: sign(t, jwt.SigningMethodES256, k.ec2, "", claims()), wantErr: "invalid token: bad signature"},
		"es-as-rs-kid": {token: sign(t, jwt.SigningMethodES256, k.ec, "rs", claims()), wantErr: `invalid token: key rs does not fit algorithm ES256`},
		"rs-as-es-kid": {token: sign(t, jwt.SigningMethodRS256, k.rsa, "es", claims()), wantErr: `invalid token: key es does not fit algorithm RS256`},
		"enc-kid":      {token: sign(t, jwt.SigningMethodRS256, k.rsa2, "enc", claims()), wantErr: `unknown key id "enc"`},
		"hs256":        {token: sign(t, jwt.SigningMethodHS256, secret, "rs", claims()), wantErr: `algorithm "HS256" not allowed (want ES256 or EdDSA or RS256)`},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			check(t, v, tc.token, "u1", tc.wantErr)
		})
	}
}

func TestVerifyRoles(t *testing.T) {
	t.Parallel()
	roles := map[string]any{"team-42": "editor", "org-1": "viewer"}
	tests := map[string]struct {
		rolesClaim string
		extra      map[string]any
		want       map[string]string
	}{
		"object":         {"roles", map[string]any{"roles": roles}, map[string]string{"team-42": "editor", "org-1": "viewer"}},
		"custom-name":    {"https://acme.example/roles", map[string]any{"https://acme.example/roles": roles}, map[string]string{"team-42": "editor", "org-1": "viewer"}},
		"empty-object":   {"roles", map[string]any{"roles": map[string]any{}}, map[string]string{}},
		"absent":         {"roles", nil, nil},
		"not-configured": {"", map[string]any{"roles": roles}, nil},
		"not-object":     {"roles", map[string]any{"roles": "editor"}, nil},
		"list":           {"roles", map[string]any{"roles": []string{"editor"}}, nil},
		"non-string":     {"roles", map[string]any{"roles": map[string]any{"team-42": "editor", "x": 1}}, nil},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			v := newVerifier(t, auth.Config{HS256Secret: secret, RolesClaim: tc.rolesClaim})
			tok, err := auth.SignHS256(secret, auth.SignClaims{Subject: "alice", TTL: time.Minute, Extra: tc.extra})
			if err != nil {
				t.Fatalf("SignHS256: %v", err)
			}
			got, err := v.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := &auth.Claims{Subject: "alice", Roles: tc.want}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(auth.Claims{}, "All")); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if got.All["sub"] != "alice" || (tc.extra != nil && tc.rolesClaim != "" && got.All[tc.rolesClaim] == nil) {
				t.Errorf("All = %v, want every claim of the token", got.All)
			}
		})
	}
}

func TestSignHS256(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, auth.Config{Issuer: testIss, Audience: testAud, HS256Secret: secret})
	tok, err := auth.SignHS256(secret, auth.SignClaims{Subject: "u1", Issuer: testIss, Audience: testAud, TTL: time.Hour})
	if err != nil {
		t.Fatalf("SignHS256: %v", err)
	}
	check(t, v, tok, "u1", "")

	// nbf may be set through Extra.
	tok, err = auth.SignHS256(secret, auth.SignClaims{Subject: "u1", Issuer: testIss, Audience: testAud, TTL: time.Hour,
		Extra: map[string]any{"nbf": rel(time.Hour)}})
	if err != nil {
		t.Fatalf("SignHS256: %v", err)
	}
	check(t, v, tok, "", "not yet valid")

	for name, tc := range map[string]struct {
		secret  []byte
		claims  auth.SignClaims
		wantErr string
	}{
		"short-secret": {[]byte("short"), auth.SignClaims{Subject: "u1", TTL: time.Hour}, "need at least 32"},
		"no-subject":   {secret, auth.SignClaims{TTL: time.Hour}, "empty subject"},
		"no-ttl":       {secret, auth.SignClaims{Subject: "u1"}, "TTL must be positive"},
		"negative-ttl": {secret, auth.SignClaims{Subject: "u1", TTL: -time.Second}, "TTL must be positive"},
		"extra-sub":    {secret, auth.SignClaims{Subject: "u1", TTL: time.Hour, Extra: map[string]any{"sub": "admin"}}, `must not set "sub"`},
		"extra-exp":    {secret, auth.SignClaims{Subject: "u1", TTL: time.Hour, Extra: map[string]any{"exp": 1}}, `must not set "exp"`},
	} {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.SignHS256(tc.secret, tc.claims)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("SignHS256 error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	t.Parallel()
	k := keys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pemPublic(t, &k.rsa.PublicKey)
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	goodJWKS := jwksDoc(t, rsaJWK("rs", &k.rsa.PublicKey))
	withPrivate := rsaJWK("rs", &k.rsa.PublicKey)
	withPrivate["d"] = b64(k.rsa.D.Bytes())
	badAlg := rsaJWK("rs", &k.rsa.PublicKey)
	badAlg["alg"] = "RS512"

	tests := map[string]struct {
		cfg     auth.Config
		wantErr string
	}{
		"no-key":             {auth.Config{Issuer: testIss}, "no key source"},
		"secret-and-pem":     {auth.Config{HS256Secret: secret, PublicKeyPEM: rsaPEM}, "more than one key source set (HS256Secret, PublicKeyPEM): set exactly one"},
		"all-three":          {auth.Config{HS256Secret: secret, PublicKeyPEM: rsaPEM, JWKS: goodJWKS}, "(HS256Secret, PublicKeyPEM, JWKS): set exactly one"},
		"short-secret":       {auth.Config{HS256Secret: []byte("too-short")}, "HS256 secret is 9 bytes, need at least 32"},
		"garbage-pem":        {auth.Config{PublicKeyPEM: []byte("hello, not a key")}, "public key PEM: no PEM block found"},
		"garbage-pem-body":   {auth.Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})}, "public key PEM: parse PUBLIC KEY"},
		"private-pem":        {auth.Config{PublicKeyPEM: privPEM}, "give the public key, never the private one"},
		"two-pem-blocks":     {auth.Config{PublicKeyPEM: append(slicesClone(rsaPEM), rsaPEM...)}, "more than one PEM block"},
		"unknown-pem-type":   {auth.Config{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte("x")})}, `unsupported PEM block type "FOO"`},
		"rsa-1024":           {auth.Config{PublicKeyPEM: pemPublic(t, &small.PublicKey)}, "RSA key has 1024 bits, need at least 2048"},
		"ec-p384":            {auth.Config{PublicKeyPEM: pemPublic(t, &p384.PublicKey)}, "curve P-384: ES256 needs P-256"},
		"garbage-jwks":       {auth.Config{JWKS: []byte("{not json")}, "JWKS: not a JSON Web Key Set"},
		"jwks-no-keys":       {auth.Config{JWKS: []byte(`{"keys":[]}`)}, `JWKS: no keys in "keys"`},
		"jwks-not-set":       {auth.Config{JWKS: []byte(`{"kty":"RSA"}`)}, `JWKS: no keys in "keys"`},
		"jwks-oct":           {auth.Config{JWKS: jwksDoc(t, map[string]any{"kty": "oct", "kid": "s", "k": b64(secret)})}, "symmetric (kty oct)"},
		"jwks-private":       {auth.Config{JWKS: jwksDoc(t, withPrivate)}, "holds private key material"},
		"jwks-bad-modulus":   {auth.Config{JWKS: jwksDoc(t, map[string]any{"kty": "RSA", "kid": "x", "n": "!!!", "e": "AQAB"})}, `JWKS: key 0 (kid "x")`},
		"jwks-unknown-kty":   {auth.Config{JWKS: jwksDoc(t, map[string]any{"kty": "XYZ", "kid": "x"})}, `JWKS: key 0 (kid "x")`},
		"jwks-dup-kid":       {auth.Config{JWKS: jwksDoc(t, rsaJWK("a", &k.rsa.PublicKey), ecJWK(t, "a", &k.ec.PublicKey))}, `key 1 (kid "a"): kid used twice`},
		"jwks-alg-mismatch":  {auth.Config{JWKS: jwksDoc(t, badAlg)}, `declares alg "RS512" but its key type verifies RS256`},
		"jwks-p384":          {auth.Config{JWKS: jwksDoc(t, ecJWK(t, "p384", &p384.PublicKey))}, "ES256 needs P-256"},
		"jwks-rsa-1024":      {auth.Config{JWKS: jwksDoc(t, rsaJWK("small", &small.PublicKey))}, "need at least 2048"},
		"jwks-only-enc-keys": {auth.Config{JWKS: jwksDoc(t, map[string]any{"kty": "RSA", "use": "enc", "n": b64(k.rsa.N.Bytes()), "e": "AQAB"})}, "no signature keys"},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			v, err := auth.NewVerifier(tc.cfg)
			if err == nil {
				t.Fatalf("NewVerifier succeeded (%v), want error containing %q", v, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "auth: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want one starting with %q and containing %q", err, "auth: ", tc.wantErr)
			}
		})
	}
}

func TestNewVerifierAcceptsPEMForms(t *testing.T) {
	t.Parallel()
	k := keys()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec.PublicKey, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, tc := range map[string]struct {
		pem   []byte
		token string
	}{
		"pkcs1":       {pkcs1, sign(t, jwt.SigningMethodRS256, k.rsa, "", claims())},
		"certificate": {cert, sign(t, jwt.SigningMethodES256, k.ec, "", claims())},
		"surrounding-whitespace": {append(append([]byte("\n\n"), pemPublic(t, k.ed.Public())...), "\n\n"...),
			sign(t, jwt.SigningMethodEdDSA, k.ed, "", claims())},
	} {
		t.Run("form="+name, func(t *testing.T) {
			t.Parallel()
			check(t, newVerifier(t, auth.Config{PublicKeyPEM: tc.pem}), tc.token, "u1", "")
		})
	}
}

func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	k := keys()
	hs := newVerifier(t, auth.Config{HS256Secret: secret})
	jw := newVerifier(t, auth.Config{JWKS: jwksDoc(t, rsaJWK("rs", &k.rsa.PublicKey), ecJWK(t, "es", &k.ec.PublicKey))})
	tokens := []struct {
		v       *auth.Verifier
		tok     string
		wantErr bool
	}{
		{hs, sign(t, jwt.SigningMethodHS256, secret, "", claims()), false},
		{hs, sign(t, jwt.SigningMethodHS256, secret, "", claims(set("exp", rel(-time.Hour)))), true},
		{jw, sign(t, jwt.SigningMethodRS256, k.rsa, "rs", claims()), false},
		{jw, sign(t, jwt.SigningMethodES256, k.ec, "es", claims()), false},
		{jw, sign(t, jwt.SigningMethodES256, k.ec, "zz", claims()), true},
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				tc := tokens[(g+i)%len(tokens)]
				_, err := tc.v.Verify(tc.tok)
				if (err != nil) != tc.wantErr {
					t.Errorf("Verify error = %v, want error: %t", err, tc.wantErr)
					return
				}
			}
		})
	}
	wg.Wait()
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// TestVerifierKeys: a key has one fingerprint whatever file it comes
// from, and different keys have different ones; core/tenant tells apart
// tenants that share a key with them.
func TestVerifierKeys(t *testing.T) {
	t.Parallel()
	k := keys()
	fps := func(cfg auth.Config) []string { return newVerifier(t, cfg).Keys() }
	other := []byte("another-secret-of-at-least-32-bytes!")
	tests := map[string]struct {
		a, b auth.Config
		same bool
	}{
		"same secret":                {auth.Config{HS256Secret: secret}, auth.Config{HS256Secret: slices.Clone(secret), Audience: "x"}, true},
		"other secret":               {auth.Config{HS256Secret: secret}, auth.Config{HS256Secret: other}, false},
		"RSA key as PEM and in JWKS": {auth.Config{PublicKeyPEM: pemPublic(t, &k.rsa.PublicKey)}, auth.Config{JWKS: jwksDoc(t, rsaJWK("a", &k.rsa.PublicKey))}, true},
		"Ed25519 key as PEM and in JWKS": {auth.Config{PublicKeyPEM: pemPublic(t, k.ed.Public())},
			auth.Config{JWKS: jwksDoc(t, ecJWK(t, "e", &k.ec.PublicKey), edJWK("d", k.ed.Public().(ed25519.PublicKey)))}, true},
		"other RSA keys": {auth.Config{PublicKeyPEM: pemPublic(t, &k.rsa.PublicKey)}, auth.Config{JWKS: jwksDoc(t, rsaJWK("b", &k.rsa2.PublicKey))}, false},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			a, b := fps(tc.a), fps(tc.b)
			if len(a) == 0 || len(b) == 0 {
				t.Fatalf("no fingerprints: %q, %q", a, b)
			}
			shared := false
			for _, fp := range a {
				shared = shared || slices.Contains(b, fp)
			}
			if shared != tc.same {
				t.Errorf("fingerprints %q and %q: shared %v, want %v", a, b, shared, tc.same)
			}
		})
	}
	if n := len(fps(auth.Config{JWKS: jwksDoc(t, rsaJWK("r", &k.rsa.PublicKey), ecJWK(t, "e", &k.ec.PublicKey))})); n != 2 {
		t.Errorf("a JWKS of two keys has %d fingerprints", n)
	}
}
