package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every error Verify returns.
var ErrInvalidToken = errors.New("invalid token")

// DefaultLeeway is the clock skew allowed for exp and nbf when
// Config.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// MinHS256SecretBytes is the shortest HS256 secret NewVerifier and SignHS256
// accept: 256 bits, the size of the hash output (RFC 7518, section 3.2).
const MinHS256SecretBytes = 32

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// maxTokenBytes bounds the token Verify will parse.
const maxTokenBytes = 16 << 10

// Algorithm names, as they appear in a token's "alg" header.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// Config is one tenant's token settings; the tenant loader reads the files
// and environment variables named in the manifest and fills the bytes.
// Exactly one of HS256Secret, PublicKeyPEM and JWKS must be set.
type Config struct {
	// Issuer, when non-empty, must equal the token's "iss". Default: not checked.
	Issuer string
	// Audience, when non-empty, must be one of the token's "aud" values.
	// Default: not checked.
	Audience string

	// HS256Secret is a shared secret of at least MinHS256SecretBytes bytes;
	// tokens must be signed with HS256.
	HS256Secret []byte
	// PublicKeyPEM is one PEM block holding a public key ("PUBLIC KEY",
	// "RSA PUBLIC KEY" or a "CERTIFICATE"). The algorithm follows the key
	// type: RSA (at least 2048 bits) → RS256, ECDSA P-256 → ES256,
	// Ed25519 → EdDSA.
	PublicKeyPEM []byte
	// JWKS is a JSON Web Key Set document with public RSA, EC P-256 or
	// Ed25519 keys. A token's "kid" header selects the key; a token without
	// "kid" is checked against every key. The accepted algorithms are those
	// of the key types in the set. Symmetric ("oct") and private keys are
	// refused.
	JWKS []byte

	// RolesClaim, when non-empty, names a claim holding a JSON object of
	// scope → role; Verify exposes it as Claims.Roles. Default: none.
	RolesClaim string

	// Leeway is the clock skew allowed when checking exp and nbf. Zero means
	// DefaultLeeway (30s); a negative value means no leeway.
	Leeway time.Duration
}

// Claims is what a verified token says about its caller.
type Claims struct {
	// Subject is the token's "sub", never empty.
	Subject string
	// Roles is the Config.RolesClaim claim when it is set and the claim is a
	// JSON object whose values are all strings (scope → role); else nil.
	Roles map[string]string
	// All holds every claim of the token, as JSON decoded them (a tenant's
	// rootFromToken reads its fields from them).
	All map[string]any
}

// Verifier checks tokens for one tenant. It is immutable and safe for
// concurrent use.
type Verifier struct {
	parser     *jwt.Parser
	keyfunc    jwt.Keyfunc
	algs       []string
	rolesClaim string
	checkIss   bool
	checkAud   bool
	keys       []string // fingerprints of the verifying keys
}

// Keys are fingerprints of the keys v verifies tokens with, one per key:
// the SHA-256 of an HS256 secret, or of a public key's PKIX encoding
// (the same key has the same fingerprint whether it came from a PEM file
// or a JWKS). Two verifiers with a key in common accept each other's
// tokens unless their audiences tell them apart.
func (v *Verifier) Keys() []string { return v.keys }

func secretFingerprint(secret []byte) string {
	sum := sha256.Sum256(secret)
	return "hs256:" + hex.EncodeToString(sum[:])
}

func publicKeyFingerprint(key any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "pk:" + hex.EncodeToString(sum[:]), nil
}

// Errors of the JWKS key lookup: no key has the token's kid, or the key
// with that kid does not fit the token (its declared alg differs).
var (
	errUnknownKID  = errors.New("unknown key id")
	errKeyMismatch = errors.New("key does not fit the token")
)

// NewVerifier builds a Verifier from cfg. It fails when no key source or
// more than one is set, or when the secret, key or JWKS is unusable.
func NewVerifier(cfg Config) (*Verifier, error) {
	var sources []string
	if len(cfg.HS256Secret) > 0 {
		sources = append(sources, "HS256Secret")
	}
	if len(cfg.PublicKeyPEM) > 0 {
		sources = append(sources, "PublicKeyPEM")
	}
	if len(cfg.JWKS) > 0 {
		sources = append(sources, "JWKS")
	}
	switch len(sources) {
	case 0:
		return nil, errors.New("auth: no key source: set one of HS256Secret, PublicKeyPEM, JWKS")
	case 1:
	default:
		return nil, fmt.Errorf("auth: more than one key source set (%s): set exactly one", strings.Join(sources, ", "))
	}

	v := &Verifier{
		rolesClaim: cfg.RolesClaim,
		checkIss:   cfg.Issuer != "",
		checkAud:   cfg.Audience != "",
	}
	switch sources[0] {
	case "HS256Secret":
		if len(cfg.HS256Secret) < MinHS256SecretBytes {
			return nil, fmt.Errorf("auth: HS256 secret is %d bytes, need at least %d", len(cfg.HS256Secret), MinHS256SecretBytes)
		}
		secret := slices.Clone(cfg.HS256Secret)
		v.algs = []string{algHS256}
		v.keyfunc = func(*jwt.Token) (any, error) { return secret, nil }
		v.keys = []string{secretFingerprint(secret)}
	case "PublicKeyPEM":
		key, alg, err := parsePublicKeyPEM(cfg.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("auth: public key PEM: %w", err)
		}
		v.algs = []string{alg}
		v.keyfunc = func(*jwt.Token) (any, error) { return key, nil }
		fp, err := publicKeyFingerprint(key)
		if err != nil {
			return nil, fmt.Errorf("auth: public key PEM: %w", err)
		}
		v.keys = []string{fp}
	case "JWKS":
		kf, algs, keys, err := newJWKSKeyfunc(cfg.JWKS)
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS: %w", err)
		}
		v.algs = algs
		v.keyfunc = kf
		v.keys = keys
	}

	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks token's signature, algorithm, exp, nbf, issuer, audience
// and subject and returns its claims. Every error wraps ErrInvalidToken and
// its message says why (for example "invalid token: expired").
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInvalidToken)
	}
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, maxTokenBytes)
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(token, claims, v.keyfunc)
	if err != nil {
		return nil, v.explain(tok, claims, err)
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return nil, fmt.Errorf("%w: sub is not a string", ErrInvalidToken)
	}
	if sub == "" {
		return nil, fmt.Errorf("%w: missing sub", ErrInvalidToken)
	}
	if err := checkSubject(tok.Raw, sub); err != nil {
		return nil, err
	}
	return &Claims{Subject: sub, Roles: v.roles(claims), All: claims}, nil
}

// checkSubject refuses a subject no database can store or tell apart: one
// with a NUL character, or one whose text in the token is not valid UTF-8
// (the JSON decoder turns each invalid byte into U+FFFD, so two different
// subjects would become one). raw is the verified token.
func checkSubject(raw, sub string) error {
	if strings.IndexByte(sub, 0) >= 0 {
		return fmt.Errorf("%w: sub must not contain the NUL character (U+0000)", ErrInvalidToken)
	}
	if !utf8.ValidString(sub) || !rawSubjectValid(raw) {
		return fmt.Errorf("%w: sub is not valid UTF-8", ErrInvalidToken)
	}
	return nil
}

// rawSubjectValid reports whether the sub claim of the (verified) token
// raw is valid UTF-8 as it was sent, before decoding.
func rawSubjectValid(raw string) bool {
	_, rest, _ := strings.Cut(raw, ".")
	seg, _, _ := strings.Cut(rest, ".")
	payload, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil { // the parser allows padding too
		if payload, err = base64.URLEncoding.DecodeString(seg); err != nil {
			return false
		}
	}
	if utf8.Valid(payload) {
		return true // the common case: nothing to look at
	}
	var c struct {
		Sub json.RawMessage `json:"sub"`
	}
	return json.Unmarshal(payload, &c) == nil && utf8.Valid(c.Sub)
}

// explain turns a jwt parse error into an ErrInvalidToken error that says
// why, without exposing the jwt package's error values.
func (v *Verifier) explain(tok *jwt.Token, claims jwt.MapClaims, err error) error {
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	if tok == nil {
		return fmt.Errorf("%w: %s", ErrInvalidToken, err.Error())
	}
	alg, ok := tok.Header["alg"].(string)
	if !ok || alg == "" {
		return fmt.Errorf("%w: missing alg", ErrInvalidToken)
	}
	if !slices.Contains(v.algs, alg) {
		return fmt.Errorf("%w: algorithm %q not allowed (want %s)", ErrInvalidToken, alg, strings.Join(v.algs, " or "))
	}
	if errors.Is(err, errUnknownKID) {
		kid, _ := tok.Header["kid"].(string)
		return fmt.Errorf("%w: unknown key id %q", ErrInvalidToken, kid)
	}
	if _, hasKID := tok.Header["kid"]; errors.Is(err, errKeyMismatch) || (hasKID && errors.Is(err, jwt.ErrInvalidKeyType)) {
		return fmt.Errorf("%w: key %v does not fit algorithm %v", ErrInvalidToken, tok.Header["kid"], tok.Header["alg"])
	}
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		return fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}
	var reasons []string
	if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
		if exp, _ := claims.GetExpirationTime(); exp == nil {
			reasons = append(reasons, "missing exp")
		}
		if iss, _ := claims.GetIssuer(); v.checkIss && iss == "" {
			reasons = append(reasons, "missing iss")
		}
		if aud, _ := claims.GetAudience(); v.checkAud && len(aud) == 0 {
			reasons = append(reasons, "missing aud")
		}
	}
	for _, r := range []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not yet valid"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrInvalidType, "a registered claim has the wrong type"},
	} {
		if errors.Is(err, r.err) {
			reasons = append(reasons, r.reason)
		}
	}
	if len(reasons) == 0 {
		return fmt.Errorf("%w: %s", ErrInvalidToken, err.Error())
	}
	return fmt.Errorf("%w: %s", ErrInvalidToken, strings.Join(reasons, ", "))
}

func (v *Verifier) roles(claims jwt.MapClaims) map[string]string {
	if v.rolesClaim == "" {
		return nil
	}
	raw, ok := claims[v.rolesClaim].(map[string]any)
	if !ok {
		return nil
	}
	roles := make(map[string]string, len(raw))
	for scope, role := range raw {
		s, ok := role.(string)
		if !ok {
			return nil
		}
		roles[scope] = s
	}
	return roles
}

// parsePublicKeyPEM reads exactly one PEM block holding a public key or a
// certificate and returns the key and the algorithm it verifies.
func parsePublicKeyPEM(data []byte) (any, string, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("no PEM block found")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, "", errors.New("more than one PEM block or trailing data; give exactly one public key")
	}
	var (
		key any
		err error
	)
	switch {
	case block.Type == "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case block.Type == "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case block.Type == "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			key = cert.PublicKey
		}
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, "", fmt.Errorf("PEM block is a %s; give the public key, never the private one", block.Type)
	default:
		return nil, "", fmt.Errorf("unsupported PEM block type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("parse %s: %w", block.Type, err)
	}
	alg, err := algorithmFor(key)
	if err != nil {
		return nil, "", err
	}
	return key, alg, nil
}

// algorithmFor returns the one algorithm a public key verifies, or an error
// when the key is of an unsupported type or too weak.
func algorithmFor(key any) (string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return "", fmt.Errorf("RSA key has %d bits, need at least %d", n, minRSABits)
		}
		return algRS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on curve %s: ES256 needs P-256", k.Curve.Params().Name)
		}
		return algES256, nil
	case ed25519.PublicKey:
		return algEdDSA, nil
	default:
		return "", fmt.Errorf("unsupported key type %T (want RSA, ECDSA P-256 or Ed25519)", key)
	}
}

// newJWKSKeyfunc parses a JWKS document and returns a key lookup by kid,
// the algorithms its keys verify and the keys' fingerprints. Keys marked "use": "enc" are skipped;
// symmetric keys, private keys, unsupported key types and duplicate kids are
// refused.
func newJWKSKeyfunc(doc []byte) (jwt.Keyfunc, []string, []string, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, nil, nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var (
		keep jwkset.JWKSMarshal
		algs []string
		fps  []string
		kids = make(map[string]bool)
	)
	if len(set.Keys) == 0 {
		return nil, nil, nil, errors.New(`no keys in "keys"`)
	}
	for i, k := range set.Keys {
		name := fmt.Sprintf("key %d (kid %q)", i, k.KID)
		if k.USE == jwkset.UseEnc {
			continue
		}
		if k.KTY == jwkset.KtyOct {
			return nil, nil, nil, fmt.Errorf("%s is symmetric (kty oct); only RSA, EC P-256 and Ed25519 public keys are allowed", name)
		}
		if k.D != "" || k.P != "" || k.Q != "" || k.DP != "" || k.DQ != "" || k.QI != "" || len(k.OTH) > 0 {
			return nil, nil, nil, fmt.Errorf("%s holds private key material; publish only public keys", name)
		}
		if k.KID != "" {
			if kids[k.KID] {
				return nil, nil, nil, fmt.Errorf("%s: kid used twice", name)
			}
			kids[k.KID] = true
		}
		jwk, err := jwkset.NewJWKFromMarshal(k, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		alg, err := algorithmFor(jwk.Key())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		if declared := k.ALG.String(); declared != "" && declared != alg {
			return nil, nil, nil, fmt.Errorf("%s: declares alg %q but its key type verifies %s", name, declared, alg)
		}
		if !slices.Contains(algs, alg) {
			algs = append(algs, alg)
		}
		fp, err := publicKeyFingerprint(jwk.Key())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		fps = append(fps, fp)
		keep.Keys = append(keep.Keys, k)
	}
	if len(keep.Keys) == 0 {
		return nil, nil, nil, errors.New(`no signature keys (every key is "use": "enc")`)
	}
	storage, err := keep.ToStorage()
	if err != nil {
		return nil, nil, nil, err
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: storage})
	if err != nil {
		return nil, nil, nil, err
	}
	slices.Sort(algs)
	lookup := func(t *jwt.Token) (any, error) {
		key, err := kf.Keyfunc(t)
		switch {
		case err == nil:
			return key, nil
		case errors.Is(err, jwkset.ErrKeyNotFound):
			return nil, errUnknownKID
		default:
			return nil, fmt.Errorf("%w: %v", errKeyMismatch, err)
		}
	}
	return lookup, algs, fps, nil
}

// SignClaims are the claims SignHS256 puts in a token.
type SignClaims struct {
	// Subject is "sub"; required.
	Subject string
	// Issuer is "iss"; omitted when empty.
	Issuer string
	// Audience is "aud"; omitted when empty.
	Audience string
	// TTL sets "exp" to now+TTL; required, must be positive. "iat" is now.
	TTL time.Duration
	// Extra holds further claims (for example a roles object or "nbf"). It
	// must not set sub, iss, aud, exp or iat.
	Extra map[string]any
}

// SignHS256 returns an HS256 token for claims signed with secret, which must
// be at least MinHS256SecretBytes long.
func SignHS256(secret []byte, claims SignClaims) (string, error) {
	if len(secret) < MinHS256SecretBytes {
		return "", fmt.Errorf("auth: HS256 secret is %d bytes, need at least %d", len(secret), MinHS256SecretBytes)
	}
	if claims.Subject == "" {
		return "", errors.New("auth: sign: empty subject")
	}
	if claims.TTL <= 0 {
		return "", fmt.Errorf("auth: sign: TTL must be positive, got %v", claims.TTL)
	}
	mc := jwt.MapClaims{}
	for k, val := range claims.Extra {
		switch k {
		case "sub", "iss", "aud", "exp", "iat":
			return "", fmt.Errorf("auth: sign: Extra must not set %q; use the SignClaims field", k)
		}
		mc[k] = val
	}
	now := time.Now()
	mc["sub"] = claims.Subject
	if claims.Issuer != "" {
		mc["iss"] = claims.Issuer
	}
	if claims.Audience != "" {
		mc["aud"] = claims.Audience
	}
	mc["iat"] = now.Unix()
	mc["exp"] = now.Add(claims.TTL).Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, mc).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}
