// Package validator is the one package a tenant imports to write a
// syncplane validator plugin: custom validation of pushed events that runs
// in its own process, started and supervised by the syncplane server
// (hashicorp/go-plugin over gRPC, contract sdk/proto/validator.proto). The
// tenant's code sees plain Go types; go-plugin, gRPC and the generated
// protobuf types stay inside Serve.
//
// A validator is called once per pushed batch with the events that passed
// schema validation, scope resolution and the policy. It answers with one
// verdict per event: allow, or reject with a message (the client gets
// CUSTOM_VALIDATION_FAILED, not retryable). An error or a panic means "could
// not decide": the host writes none of the batch's events and the client
// retries later (VALIDATOR_UNAVAILABLE). Nothing is ever partly allowed.
//
//	package main
//
//	import (
//		"context"
//
//		"github.com/syncplane/syncplane/sdk/validator"
//	)
//
//	func main() { validator.Serve(validator.Func(check)) }
//
//	func check(ctx context.Context, req *validator.Request) (*validator.Response, error) {
//		res := validator.Allow(req)
//		for i, ev := range req.Events {
//			if ev.Model == "Board" && ev.Operation == validator.Create && ev.Payload["name"] == "" {
//				res.Reject(i, "board name must not be empty")
//			}
//		}
//		return res, nil
//	}
//
// # Reading committed data
//
// During Validate, Request.Find and Request.Count read the tenant's
// committed records through the host, always restricted to the tenant and
// to the scopes of the batch's events; e.g. a board name unique per user:
//
//	n, err := req.Count(ctx, "Board", map[string]any{"userId": ev.Payload["userId"], "name": name})
//	if err != nil {
//		return nil, err // could not decide: the batch is retried later
//	}
//	if n > 0 {
//		res.Reject(i, "a board named %q exists", name)
//	}
//
// Reads see committed data only, not the other events of the batch.
//
// # Values
//
// Event.Key, Event.Payload and read records are decoded from JSON with
// encoding/json's defaults: numbers are float64, objects map[string]any.
//
// # Logs
//
// Log with Logger (JSON on standard error; the host keeps the lines with
// their level). Never write to standard output: it carries the handshake.
//
// # Testing
//
// Package sdk/validatortest runs a Validator in-process, with committed
// records held in memory, without building a plugin binary.
package validator
