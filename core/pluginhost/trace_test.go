package pluginhost

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncplane/syncplane/core/syncdata"
)

// TestValidateTrace: under a span, a call is a client span below it and
// the plugin receives its W3C traceparent in the gRPC metadata; without
// one, nothing is recorded and the plugin receives none.
func TestValidateTrace(t *testing.T) {
	p := newPluginFile(t)
	h, _ := newHost(t, p, Config{}, nil)
	warmUp(t, h)

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, parent := tp.Tracer("test").Start(ctx, "request")
	got, err := h.Validate(ctx, "u1", []syncdata.ValidationEvent{ev("Trace", `{}`)})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the request's and the call's: %+v", len(spans), spans)
	}
	call := spans[0]
	if call.Name != validateSpan || call.SpanKind != trace.SpanKindClient || call.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("call span: %s kind %v parent %v, want %s, client, below %v", call.Name, call.SpanKind, call.Parent.SpanID(), validateSpan, parent.SpanContext().SpanID())
	}
	attrs := attribute.NewSet(call.Attributes...)
	if v, _ := attrs.Value("syncplane.validator.outcome"); v.AsString() != OutcomeOK {
		t.Errorf("outcome attribute %q, want %q", v.AsString(), OutcomeOK)
	}
	if v, _ := attrs.Value("syncplane.events"); v.AsInt64() != 1 {
		t.Errorf("events attribute %d, want 1", v.AsInt64())
	}
	want := fmt.Sprintf("00-%s-%s-01", call.SpanContext.TraceID(), call.SpanContext.SpanID())
	if len(got) != 1 || got[0].Message != want {
		t.Errorf("the plugin received traceparent %+v, want %q", got, want)
	}

	// No span in the context: no traceparent, nothing recorded.
	exp.Reset()
	got, err = validate(h, ev("Trace", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Message != "" {
		t.Errorf("without tracing the plugin received traceparent %+v", got)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("without tracing %d spans were recorded", n)
	}
}
