// Package tracing starts syncplane's OpenTelemetry spans below the
// request's span.
//
// The HTTP API starts a server span per request with the tracer provider
// it was given (httpapi.WithTracerProvider); the stages below it (push's
// check, validate, policy and transaction, the validator call, pull's
// page) start their spans with the provider of the span in their context,
// found by Start. There is no global tracer: a request without a span in
// its context (tracing off, the default) gets the no-op span from Start
// at the cost of a context lookup, without allocating, and the callers
// set attributes only on a recording span. Spans are per request and per
// stage, never per event.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of syncplane's tracers.
const Name = "github.com/syncplane/syncplane"

// Start starts the span name as a child of the span in ctx, with that
// span's tracer provider. When ctx carries no valid span (tracing off), it
// returns ctx and a no-op span and allocates nothing.
func Start(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(Name).Start(ctx, name)
}

// StartClient is Start for a span of kind client: a call to another
// process (the tenant's validator plugin).
func StartClient(ctx context.Context, name string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(Name).Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
}

// Without returns ctx without its span: Start then starts nothing below
// it. Stages that would otherwise start spans per event (push's fallback,
// one transaction per event) run under it, inside one span of their own.
func Without(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return trace.ContextWithSpan(ctx, trace.SpanFromContext(context.Background()))
}

// End ends span, first marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Int sets the attribute key to v on span when it is recording (an
// attribute given to a no-op span would be allocated for nothing).
func Int(span trace.Span, key string, v int) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int(key, v))
	}
}
