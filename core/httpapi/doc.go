// Package httpapi is syncplane's HTTP edge: the gin router with the push,
// pull and health endpoints. It is the only package that knows gin. It
// authenticates each request with its tenant's verifier, enforces the
// tenant's limits, calls the push and pull services with plain types, and
// maps every error to a status code and a JSON body {"error": ..., "details"?}
// in one place (errors.go), never leaking internals in a 500.
package httpapi
