// Package auth verifies the JSON Web Tokens that a tenant's clients send
// with every push and pull, and signs HS256 tokens for the `syncplane token`
// command and tests.
//
// Each tenant has one Verifier, built by the tenant loader with NewVerifier
// from the tenant manifest's auth section (issuer, audience, one key source:
// an HS256 secret, a PEM public key or a JWKS file, and an optional roles
// claim). core/httpapi calls Verify on the bearer token and passes
// Claims.Subject (and Claims.Roles when the tenant names a roles claim) to
// the push and pull services.
//
// Verification fails closed: only the algorithm that fits the configured
// key type is accepted (HS256, RS256, ES256 or EdDSA; never "none"), exp is
// required, nbf is honored, and a non-empty sub is required. Every failure
// wraps ErrInvalidToken and says why. Keys are read from bytes only; the
// package never touches the network or the file system.
package auth
