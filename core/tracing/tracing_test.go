package tracing

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOffAllocatesNothing: without a span in the context, a stage's
// tracing costs no allocation.
func TestOffAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	err := errors.New("x")
	n := testing.AllocsPerRun(100, func() {
		c, span := Start(ctx, "stage")
		Int(span, "n", 3)
		_, client := StartClient(Without(c), "call")
		End(client, nil)
		End(span, err)
	})
	if n != 0 {
		t.Errorf("%v allocations per stage with tracing off, want 0", n)
	}
}

// TestStart: below a span, Start starts a child with the span's provider;
// below Without, nothing.
func TestStart(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	c, span := Start(ctx, "stage")
	Int(span, "n", 3)
	_, quiet := Start(Without(c), "per event")
	End(quiet, nil)
	_, call := StartClient(c, "call")
	End(call, errors.New("down"))
	End(span, nil)
	root.End()
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3: %+v", len(spans), spans)
	}
	stage, callStub := spans[1], spans[0]
	if stage.Name != "stage" || stage.Parent.SpanID() != root.SpanContext().SpanID() || len(stage.Attributes) != 1 {
		t.Errorf("stage span %+v", stage)
	}
	if callStub.Name != "call" || callStub.SpanKind != trace.SpanKindClient || callStub.Parent.SpanID() != stage.SpanContext.SpanID() || callStub.Status.Description != "down" {
		t.Errorf("call span %+v", callStub)
	}
}
