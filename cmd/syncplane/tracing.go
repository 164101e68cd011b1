package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// tracingShutdownTimeout bounds the flush of the last spans at exit.
const tracingShutdownTimeout = 5 * time.Second

// setupTracing sets up OpenTelemetry tracing for serve from the standard
// OTEL_* variables (see tracingEnabled and README, "Tracing"): an OTLP
// exporter (gRPC or HTTP/protobuf by OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL, HTTP by default) behind a batch span
// processor, the sampler of OTEL_TRACES_SAMPLER, and a resource whose
// service.name is OTEL_SERVICE_NAME ("syncplane" by default) with
// OTEL_RESOURCE_ATTRIBUTES. The exporter reads its own settings
// (endpoint, headers, TLS, timeout, compression) from the process
// environment, as the SDK does.
//
// Off, it returns a nil provider (httpapi.WithTracerProvider(nil) traces
// nothing) and a stop that does nothing. On, it also installs the provider,
// the W3C trace-context and baggage propagators and an error handler that
// logs export failures as otel's globals, for libraries that use them;
// stop flushes the spans not yet exported (for at most
// tracingShutdownTimeout) and shuts the exporter down.
func setupTracing(ctx context.Context, getenv func(string) string, log *slog.Logger) (trace.TracerProvider, func(), error) {
	on, ignored := tracingEnabled(getenv)
	for _, v := range ignored {
		log.Warn("tracing: OTEL_TRACES_EXPORTER names an exporter syncplane does not have; only otlp and none are supported", "exporter", v)
	}
	if !on {
		return nil, func() {}, nil
	}
	protocol, err := otlpProtocol(getenv)
	if err != nil {
		return nil, nil, err
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx) // dials lazily: no collector needed to start
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "syncplane")), // unless the environment names it
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv())
	if err != nil {
		if res == nil {
			_ = exp.Shutdown(ctx)
			return nil, nil, fmt.Errorf("tracing: resource: %w", err)
		}
		log.Warn("tracing: resource partly detected", "err", err) // a malformed OTEL_RESOURCE_ATTRIBUTES
	}
	// The sampler is OTEL_TRACES_SAMPLER's (parent-based always-on by
	// default), the batching OTEL_BSP_*'s: the SDK reads them.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	service, _ := res.Set().Value("service.name")
	log.Info("tracing", "exporter", "otlp", "protocol", protocol, "service", service.AsString())
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("tracing: the last spans were not all exported", "err", err)
		}
	}
	return tp, stop, nil
}

// tracingEnabled decides whether serve exports traces: not when
// OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER is none; when
// OTEL_TRACES_EXPORTER names otlp, or, unset, when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set. Exporters of OTEL_TRACES_EXPORTER other than otlp and none are
// returned as ignored.
func tracingEnabled(getenv func(string) string) (on bool, ignored []string) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	if v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v != "" {
		for _, e := range strings.Split(v, ",") {
			switch e = strings.ToLower(strings.TrimSpace(e)); e {
			case "none":
				return false, nil
			case "otlp":
				on = true
			case "":
			default:
				ignored = append(ignored, e)
			}
		}
		return on, ignored
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
}

// otlpProtocol is the OTLP transport of the traces: grpc or http/protobuf
// (the specification's default); http/json is not supported.
func otlpProtocol(getenv func(string) string) (string, error) {
	p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if p == "" {
		p = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch p {
	case "":
		return "http/protobuf", nil
	case "grpc", "http/protobuf":
		return p, nil
	}
	return "", fmt.Errorf("tracing: OTLP protocol %q is not supported (grpc or http/protobuf)", p)
}
