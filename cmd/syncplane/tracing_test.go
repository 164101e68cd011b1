package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestTracingEnabled(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		on      bool
		ignored string
	}{
		{env: nil},
		{env: map[string]string{"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": " OTLP , console"}, on: true, ignored: "console"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ignored: "zipkin"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,none"}},
		{env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, on: true},
	} {
		on, ignored := tracingEnabled(envOf(c.env))
		if on != c.on || strings.Join(ignored, ",") != c.ignored {
			t.Errorf("%v: on %v ignored %v, want %v %q", c.env, on, ignored, c.on, c.ignored)
		}
	}
}

func TestOTLPProtocol(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string // "" for an error
	}{
		{nil, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, "grpc"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, ""},
	} {
		got, err := otlpProtocol(envOf(c.env))
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("%v: %q, %v; want %q", c.env, got, err, c.want)
		}
	}
}

// TestSetupTracing builds the exporters against a collector that never
// answers: nothing needs the network to start, spans record (or not, by
// OTEL_TRACES_SAMPLER), and stop returns within its bound. It sets the
// process environment (the exporters read it): not parallel.
func TestSetupTracing(t *testing.T) {
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) })
	for _, c := range []struct {
		name    string
		env     map[string]string
		on      bool
		record  bool
		logHas  string
		failure bool
	}{
		{name: "off"},
		{name: "none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}},
		{name: "http", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, on: true, record: true,
			logHas: "protocol=http/protobuf service=syncplane"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_SERVICE_NAME": "sync-eu"}, on: true, record: true, logHas: "protocol=grpc service=sync-eu"},
		{name: "sampled out", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "always_off",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, on: true},
		{name: "json", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, failure: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
				"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
				"OTEL_TRACES_SAMPLER", "OTEL_RESOURCE_ATTRIBUTES"} {
				t.Setenv(k, c.env[k])
			}
			t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "200") // ms
			var logs bytes.Buffer
			tp, stop, err := setupTracing(context.Background(), os.Getenv, slog.New(slog.NewTextHandler(&logs, nil)))
			if c.failure {
				if err == nil {
					stop()
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tp != nil) != c.on {
				t.Fatalf("provider %v, want on=%v", tp, c.on)
			}
			if tp != nil {
				_, span := tp.Tracer("test").Start(context.Background(), "request")
				if span.IsRecording() != c.record {
					t.Errorf("span recording %v, want %v", span.IsRecording(), c.record)
				}
				span.End()
			}
			start := time.Now()
			stop()
			if d := time.Since(start); d > tracingShutdownTimeout+time.Second {
				t.Errorf("stop took %v", d)
			}
			if !strings.Contains(logs.String(), c.logHas) {
				t.Errorf("log lacks %q:\n%s", c.logHas, logs.String())
			}
		})
	}
}
