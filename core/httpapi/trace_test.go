package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/core/testkit"
)

// tracedEnv serves "acme" (with the kanban-rules validator) and "beta"
// (without) twice on one registry: traced, into the returned exporter, and
// untraced; both log JSON lines into the returned buffers.
func tracedEnv(t *testing.T) (traced, untraced string, exp *tracetest.InMemoryExporter, tracedLog, untracedLog *testkit.LockedBuffer) {
	t.Helper()
	root := t.TempDir()
	bin := kanbanRules(t)
	writeTenant(t, root, "acme", "validator:\n  command: "+bin+"\n  sha256: "+sha256File(t, bin)+"\n  timeout: 5s\n")
	writeTenant(t, root, "beta", "")
	st := storetest.Databases(t)[0].Open(t)
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog()})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t.Cleanup(func() { _ = reg.Close() })
	exp = tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracedLog, untracedLog = &testkit.LockedBuffer{}, &testkit.LockedBuffer{}
	on := httptest.NewServer(httpapi.New(reg, slog.New(slog.NewJSONHandler(tracedLog, nil)), httpapi.WithTracerProvider(tp)))
	t.Cleanup(on.Close)
	off := httptest.NewServer(httpapi.New(reg, slog.New(slog.NewJSONHandler(untracedLog, nil))))
	t.Cleanup(off.Close)
	return on.URL, off.URL, exp, tracedLog, untracedLog
}

// postWith posts body with the token and extra headers and fails on a non-200.
func postWith(t *testing.T, url, tok string, body any, header map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(body)
	must(t, err)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", url, resp.StatusCode, out)
	}
	return out
}

// spanNamed waits for the span name below parent (any parent when it is
// invalid) and returns it.
func spanNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string, parent trace.SpanID) tracetest.SpanStub {
	t.Helper()
	var found tracetest.SpanStub
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, s := range exp.GetSpans() {
			if s.Name == name && (!parent.IsValid() || s.Parent.SpanID() == parent) {
				found = s
				return nil
			}
		}
		var names []string
		for _, s := range exp.GetSpans() {
			names = append(names, s.Name+" < "+s.Parent.SpanID().String())
		}
		return fmt.Errorf("no span %q below %v among %v", name, parent, names)
	})
	return found
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	set := attribute.NewSet(s.Attributes...)
	v, _ := set.Value(attribute.Key(key))
	return v
}

// requestLine waits for the request log line of route.
func requestLine(t *testing.T, log *testkit.LockedBuffer, route string) map[string]any {
	t.Helper()
	var line map[string]any
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, l := range strings.Split(log.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["route"] == route {
				line = m
				return nil
			}
		}
		return fmt.Errorf("no request line for %s in %s", route, log.String())
	})
	return line
}

const (
	pushRoute = "/v1/tenants/:tenant/push"
	pullRoute = "/v1/tenants/:tenant/pull"
)

// TestTracing: a traced push continues the client's trace and has the
// stages as spans below the request's (the validator's call among them),
// a traced pull has its page's; the request log names the request's span;
// an untraced server records nothing and logs no trace ids.
func TestTracing(t *testing.T) {
	t.Parallel()
	on, off, exp, onLog, offLog := tracedEnv(t)

	// The client's trace: the request's span continues it.
	clientTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	clientSpan, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traceparent := "00-" + clientTrace.String() + "-" + clientSpan.String() + "-01"
	postWith(t, on+"/v1/tenants/acme/push", token(t, "acme", "tr1"),
		map[string]any{"events": []any{ev("", "User", "create", user("tr1")), ev("", "Board", "create", board("trb1", "tr1", "Q1"))}},
		map[string]string{"traceparent": traceparent})

	req := spanNamed(t, exp, "POST "+pushRoute, trace.SpanID{})
	if req.SpanKind != trace.SpanKindServer || req.SpanContext.TraceID() != clientTrace || req.Parent.SpanID() != clientSpan || !req.Parent.IsRemote() {
		t.Errorf("request span: kind %v trace %v parent %v, want server, %v, remote %v", req.SpanKind, req.SpanContext.TraceID(), req.Parent.SpanID(), clientTrace, clientSpan)
	}
	for k, want := range map[string]string{"syncplane.tenant": "acme", "http.route": pushRoute, "http.request.method": "POST"} {
		if got := attr(req, k).AsString(); got != want {
			t.Errorf("request span %s = %q, want %q", k, got, want)
		}
	}
	if got := attr(req, "http.response.status_code").AsInt64(); got != 200 {
		t.Errorf("request span status %d, want 200", got)
	}
	id := req.SpanContext.SpanID()
	if got := attr(spanNamed(t, exp, "push.decode", id), "syncplane.events").AsInt64(); got != 2 {
		t.Errorf("push.decode events = %d, want 2", got)
	}
	spanNamed(t, exp, "push.check", id)
	validate := spanNamed(t, exp, "push.validate", id)
	spanNamed(t, exp, "push.policy", validate.SpanContext.SpanID())
	call := spanNamed(t, exp, "syncplane.validator.v1.Validator/Validate", validate.SpanContext.SpanID())
	if call.SpanKind != trace.SpanKindClient || attr(call, "syncplane.validator.outcome").AsString() != "ok" {
		t.Errorf("validator span: kind %v, attributes %v", call.SpanKind, call.Attributes)
	}
	tx := spanNamed(t, exp, "push.transaction", id)
	if got := attr(tx, "syncplane.changes").AsInt64(); got != 2 {
		t.Errorf("push.transaction changes = %d, want 2", got)
	}
	for _, name := range []string{"push.policy", "push.write", "push.commit"} {
		spanNamed(t, exp, name, tx.SpanContext.SpanID())
	}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() != clientTrace {
			t.Errorf("span %s is in trace %v, want %v", s.Name, s.SpanContext.TraceID(), clientTrace)
		}
	}
	line := requestLine(t, onLog, pushRoute)
	if line["trace_id"] != clientTrace.String() || line["span_id"] != id.String() {
		t.Errorf("request log line %v, want trace_id %v span_id %v", line, clientTrace, id)
	}

	// A pull, without a traceparent: a trace of its own.
	postWith(t, on+"/v1/tenants/acme/pull", token(t, "acme", "tr1"), map[string]any{}, nil)
	preq := spanNamed(t, exp, "POST "+pullRoute, trace.SpanID{})
	if preq.Parent.IsValid() || preq.SpanContext.TraceID() == clientTrace {
		t.Errorf("pull span continues %v", preq.Parent)
	}
	page := spanNamed(t, exp, "pull.page", preq.SpanContext.SpanID())
	if got := attr(page, "syncplane.entries").AsInt64(); got != 2 {
		t.Errorf("pull.page entries = %d, want 2", got)
	}
	line = requestLine(t, onLog, pullRoute)
	if line["trace_id"] != preq.SpanContext.TraceID().String() || line["span_id"] != preq.SpanContext.SpanID().String() {
		t.Errorf("pull's request log line %v, want span %v", line, preq.SpanContext)
	}

	// Untraced: nothing recorded, no ids logged, a traceparent ignored.
	exp.Reset()
	postWith(t, off+"/v1/tenants/acme/push", token(t, "acme", "tr2"),
		map[string]any{"events": []any{ev("", "User", "create", user("tr2"))}}, map[string]string{"traceparent": traceparent})
	postWith(t, off+"/v1/tenants/beta/pull", token(t, "beta", "tr2"), map[string]any{}, nil)
	for _, route := range []string{pushRoute, pullRoute} {
		line := requestLine(t, offLog, route)
		if _, ok := line["trace_id"]; ok {
			t.Errorf("untraced request log line has a trace id: %v", line)
		}
		if _, ok := line["span_id"]; ok {
			t.Errorf("untraced request log line has a span id: %v", line)
		}
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("untraced requests recorded %d spans", len(spans))
	}
}
