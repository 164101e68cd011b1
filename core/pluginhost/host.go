package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syncplane/syncplane/core/syncdata"
	"github.com/syncplane/syncplane/core/tracing"
	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

// Defaults of Config.
const (
	DefaultTimeout       = 2 * time.Second
	DefaultMaxConcurrent = 4
	DefaultMemoryBytes   = 1 << 30 // RLIMIT_AS: address space, see the package doc
	DefaultCPUSeconds    = 60      // RLIMIT_CPU: cumulative CPU time of the process
	DefaultIdleTimeout   = 5 * time.Minute
	DefaultMaxTimeouts   = 3
)

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
	// startTimeout bounds go-plugin's wait for the handshake.
	startTimeout = 10 * time.Second
)

// Config describes one tenant's validator plugin. Zero values take the
// defaults.
type Config struct {
	Tenant string
	// Command is the absolute path of the plugin executable.
	Command string
	// SHA256 is the executable's sha256 in hex, verified before every start.
	SHA256 string
	// Timeout is the deadline of every call (default 2s).
	Timeout time.Duration
	// MaxConcurrent bounds the calls in flight to the plugin (default 4);
	// more wait for a slot.
	MaxConcurrent int
	// MemoryBytes is the plugin's RLIMIT_AS (default 1 GiB). It limits
	// address space, and a Go program reserves about 800 MB of it before it
	// allocates anything; Go fails to start with 1150-1250 MiB. See the
	// package doc.
	MemoryBytes uint64
	// CPUSeconds is the plugin's RLIMIT_CPU (default 60): the CPU time the
	// process may use in its whole life before the kernel kills it.
	CPUSeconds uint64
	// IdleTimeout stops the process after this long without calls
	// (default 5m).
	IdleTimeout time.Duration
	// MaxTimeouts recycles the process (kill, restart at the next call)
	// after this many consecutive call timeouts (default 3).
	MaxTimeouts int
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = DefaultMemoryBytes
	}
	if c.CPUSeconds == 0 {
		c.CPUSeconds = DefaultCPUSeconds
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxTimeouts <= 0 {
		c.MaxTimeouts = DefaultMaxTimeouts
	}
	return c
}

// Reader serves the plugin's HostReader calls with the tenant's committed
// records. The host passes the scopes of the batch being validated; the
// Reader returns only records of the tenant in those scopes (none when
// scopes is empty). where maps fields to the values they must equal (JSON
// scalars: string, json.Number (the number's text as the plugin sent it),
// bool or nil).
type Reader interface {
	Find(ctx context.Context, scopes []string, model string, where map[string]any, limit int) ([]json.RawMessage, error)
	Count(ctx context.Context, scopes []string, model string, where map[string]any) (int64, error)
}

// ErrUnavailable is wrapped by every error of a Host: the validator could
// not decide (not started, crashed, past its deadline, a garbage answer,
// closed). Callers fail the events closed with a retryable error.
var ErrUnavailable = errors.New("validator unavailable")

var (
	errClosed      = errors.New("plugin host closed")
	errCallTimeout = errors.New("plugin call timed out")
	errGarbage     = errors.New("malformed answer")
)

// Host runs one tenant's validator plugin process. Its methods are safe
// for concurrent use.
type Host struct {
	cfg     Config
	reader  Reader
	log     *slog.Logger
	prlimit string // path of prlimit(1); "" when not found
	slots   chan struct{}
	life    context.Context // done at Close
	stop    context.CancelFunc
	calls   callTable
	stats   *tenantStats

	mu       sync.Mutex
	closed   bool
	inst     *instance     // the running process, if any
	hadInst  bool          // a process was started before: the next start is a restart
	starting chan struct{} // closed when the start in progress ends
	failures int           // failed starts and deaths since the last good call
	retryAt  time.Time     // no start before
	lastErr  error         // why the last start failed or the process died
	timeouts int           // consecutive call timeouts of inst
	inflight int           // calls holding an instance
	lastUse  time.Time
	idle     *time.Timer
	bg       sync.WaitGroup // starts and kills in progress
}

// New returns a Host of the plugin cfg describes; it starts nothing. reader
// serves the plugin's reads (nil: the plugin gets no read service). log
// gets the host's and the plugin's log lines (nil discards them).
func New(cfg Config, reader Reader, log *slog.Logger) *Host {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	life, stop := context.WithCancel(context.Background())
	return &Host{
		cfg:     cfg,
		reader:  reader,
		log:     log.With("tenant", cfg.Tenant, "command", cfg.Command),
		prlimit: findPrlimit(),
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		life:    life,
		stop:    stop,
		calls:   callTable{m: map[string]activeCall{}},
		stats:   statsOf(cfg.Tenant),
	}
}

// Validate asks the plugin for one verdict per event, in order. It starts
// the plugin if needed. An error wraps ErrUnavailable.
//
// When ctx carries a span (see package tracing), the call is a client
// span (validateSpan) and the plugin gets the trace context as W3C
// traceparent (and tracestate) in the call's gRPC metadata.
func (h *Host) Validate(ctx context.Context, subject string, events []syncdata.ValidationEvent) (_ []syncdata.Verdict, err error) {
	if len(events) == 0 {
		return []syncdata.Verdict{}, nil
	}
	ctx, span := tracing.StartClient(ctx, validateSpan)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", "syncplane.validator.v1.Validator"),
			attribute.String("rpc.method", "Validate"), attribute.String("syncplane.tenant", h.cfg.Tenant), attribute.Int("syncplane.events", len(events)))
	}
	if span.SpanContext().IsValid() {
		ctx = injectTrace(ctx)
	}
	var outcome string
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.String("syncplane.validator.outcome", outcome))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(otelcodes.Error, err.Error())
			}
		}
		span.End()
	}()
	start := time.Now()
	req := &validatorv1.ValidateRequest{
		Tenant:  h.cfg.Tenant,
		Subject: subject,
		Events:  make([]*validatorv1.Event, len(events)),
	}
	for i, ev := range events {
		req.Events[i] = &validatorv1.Event{
			Id:          ev.ID,
			Model:       ev.Model,
			Operation:   ev.Operation,
			KeyJson:     string(ev.Key),
			PayloadJson: string(ev.Payload),
			Scope:       ev.Scope,
		}
	}
	scopes := batchScopes(events)

	var verdicts []syncdata.Verdict
	outcome, err = h.call(ctx, func(ctx context.Context, inst *instance) error {
		if id := h.serveReader(inst); id != 0 {
			callID, end := h.calls.open(ctx, scopes)
			defer end()
			req.ReaderBrokerId, req.CallId = id, callID
		}
		res, err := inst.validator.Validate(ctx, req)
		if err != nil {
			return err
		}
		if n := len(res.GetVerdicts()); n != len(events) {
			return fmt.Errorf("%w: %d verdicts for %d events", errGarbage, n, len(events))
		}
		verdicts = make([]syncdata.Verdict, len(events))
		for i, v := range res.GetVerdicts() {
			verdicts[i] = syncdata.Verdict{Allow: v.GetAllow(), Message: v.GetMessage()}
		}
		return nil
	})
	if err == nil && slices.ContainsFunc(verdicts, func(v syncdata.Verdict) bool { return !v.Allow }) {
		outcome = OutcomeRejected
	}
	h.stats.call(outcome, time.Since(start))
	if err != nil {
		return nil, err
	}
	return verdicts, nil
}

// validateSpan names the span of a Validate call (rpc.service/rpc.method,
// as OpenTelemetry's gRPC conventions name a client span).
const validateSpan = "syncplane.validator.v1.Validator/Validate"

// injectTrace adds the W3C trace context of ctx's span to the outgoing
// gRPC metadata of ctx.
func injectTrace(ctx context.Context) context.Context {
	var carrier propagation.MapCarrier = make(map[string]string, 2)
	propagation.TraceContext{}.Inject(ctx, carrier)
	kv := make([]string, 0, 2*len(carrier))
	for k, v := range carrier {
		kv = append(kv, k, v)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// Info asks the plugin to describe itself. A plugin without Info answers
// empty values and no error. An error wraps ErrUnavailable.
func (h *Host) Info(ctx context.Context) (name, version string, caps []string, err error) {
	start := time.Now()
	var res *validatorv1.InfoResponse
	outcome, err := h.call(ctx, func(ctx context.Context, inst *instance) error {
		r, err := inst.validator.Info(ctx, &validatorv1.InfoRequest{})
		if status.Code(err) == codes.Unimplemented {
			r, err = &validatorv1.InfoResponse{}, nil
		}
		res = r
		return err
	})
	h.stats.call(outcome, time.Since(start))
	if err != nil {
		return "", "", nil, err
	}
	return res.GetName(), res.GetVersion(), res.GetCapabilities(), nil
}

// Close kills the plugin process and waits for the host's goroutines;
// later calls fail with ErrUnavailable. It is safe to call more than once.
func (h *Host) Close() error {
	h.mu.Lock()
	inst := h.inst
	if !h.closed {
		h.closed = true
		h.inst = nil
		if h.idle != nil {
			h.idle.Stop()
		}
	}
	h.mu.Unlock()
	h.stop() // kills a process being started and aborts calls in flight
	if inst != nil {
		h.stats.stopped("")
		inst.kill()
	}
	h.bg.Wait()
	return nil
}

// call runs fn with a started instance, under the call deadline, and
// turns its outcome into the host's state, the outcome's class (an
// Outcome constant; OutcomeOK when fn succeeded) and an error wrapping
// ErrUnavailable.
func (h *Host) call(ctx context.Context, fn func(context.Context, *instance) error) (string, error) {
	// Waiting for a slot and for a start is bounded by the timeout too.
	wait, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	select {
	case h.slots <- struct{}{}:
	case <-wait.Done():
		return notCalled(ctx), h.unavailable("all %d call slots busy: %w", h.cfg.MaxConcurrent, context.Cause(wait))
	case <-h.life.Done():
		return OutcomeUnavailable, h.unavailable("%w", errClosed)
	}
	defer func() { <-h.slots }()

	inst, err := h.instance(wait)
	if err != nil {
		return notCalled(ctx), err
	}
	defer h.release()

	callCtx, end := h.callContext(ctx)
	defer end()
	return h.settle(ctx, callCtx, inst, fn(callCtx, inst))
}

// notCalled is the outcome of a call that never reached a process.
func notCalled(ctx context.Context) string {
	if ctx.Err() != nil {
		return OutcomeCanceled
	}
	return OutcomeUnavailable
}

// callContext merges the caller's context, the host's lifetime and the
// per-call timeout; the timeout is the context's cause errCallTimeout.
func (h *Host) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(h.life, func() { cancel(errClosed) })
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, h.cfg.Timeout, errCallTimeout)
	return ctx, func() {
		cancelTimeout()
		stop()
		cancel(nil)
	}
}

// instance returns the running instance, starting one if there is none
// and no backoff is pending. The caller must call release.
func (h *Host) instance(ctx context.Context) (*instance, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, h.unavailable("%w", errClosed)
		}
		if inst := h.inst; inst != nil {
			if !inst.exited() {
				h.inflight++
				h.mu.Unlock()
				return inst, nil
			}
			h.diedLocked(inst, errors.New("plugin process exited between calls"))
		}
		if wait := time.Until(h.retryAt); wait > 0 {
			err := h.lastErr
			h.mu.Unlock()
			return nil, h.unavailable("next start in %s: %w", wait.Round(time.Millisecond), err)
		}
		started := h.starting
		if started == nil {
			started = make(chan struct{})
			h.starting = started
			h.bg.Add(1)
			go h.start(started)
		}
		h.mu.Unlock()

		select {
		case <-started:
		case <-ctx.Done():
			return nil, h.unavailable("waiting for the plugin to start: %w", context.Cause(ctx))
		case <-h.life.Done():
			return nil, h.unavailable("%w", errClosed)
		}
	}
}

// start launches a process and publishes it, or records the failure.
func (h *Host) start(started chan struct{}) {
	defer h.bg.Done()
	defer close(started)
	inst, err := h.launch()

	h.mu.Lock()
	h.starting = nil
	if h.closed {
		h.mu.Unlock()
		if inst != nil {
			inst.kill()
		}
		return
	}
	defer h.mu.Unlock()
	if err != nil {
		h.stats.startFailed()
		h.failures++
		d := backoff(h.failures)
		h.retryAt, h.lastErr = time.Now().Add(d), err
		msg := "validator plugin failed to start; the tenant's pushes fail with a retryable error"
		if errors.Is(err, errChecksum) {
			msg = "validator plugin checksum mismatch: not starting it; the tenant's pushes fail with a retryable error"
		}
		h.log.Error(msg, "error", err, "retry_in", d)
		return
	}
	h.inst, h.timeouts = inst, 0
	h.stats.started(h.hadInst)
	h.hadInst = true
	h.log.Info("validator plugin started", "pid", inst.pid)
	if h.inflight == 0 {
		h.lastUse = time.Now()
		h.armIdleLocked()
	}
}

// release ends a call's use of the instance.
func (h *Host) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.inflight--
	h.lastUse = time.Now()
	if h.inflight == 0 {
		h.armIdleLocked()
	}
}

func (h *Host) armIdleLocked() {
	if h.closed {
		return
	}
	if h.idle == nil {
		h.idle = time.AfterFunc(h.cfg.IdleTimeout, h.stopIdle)
		return
	}
	h.idle.Reset(h.cfg.IdleTimeout)
}

// stopIdle stops the process if it had no call for IdleTimeout.
func (h *Host) stopIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.inst == nil || h.inflight > 0 || time.Since(h.lastUse) < h.cfg.IdleTimeout {
		return
	}
	h.log.Info("stopping idle validator plugin", "pid", h.inst.pid, "idle", h.cfg.IdleTimeout)
	h.dropLocked(StopIdle)
}

// settle classifies a call's outcome, updates the host's state and returns
// the outcome's class and the caller's error.
func (h *Host) settle(ctx, callCtx context.Context, inst *instance, err error) (string, error) {
	switch {
	case err == nil:
		h.mu.Lock()
		if h.inst == inst {
			h.timeouts, h.failures = 0, 0
		}
		h.mu.Unlock()
		return OutcomeOK, nil

	case timedOut(ctx, callCtx, err):
		h.mu.Lock()
		if h.inst == inst {
			h.timeouts++
			if h.timeouts >= h.cfg.MaxTimeouts {
				h.log.Warn("recycling validator plugin after consecutive timeouts", "pid", inst.pid, "timeouts", h.timeouts, "timeout", h.cfg.Timeout)
				h.dropLocked(StopTimeouts)
			}
		}
		h.mu.Unlock()
		return OutcomeTimeout, h.unavailable("no answer within %s: %w", h.cfg.Timeout, errCallTimeout)

	case h.life.Err() != nil:
		return OutcomeUnavailable, h.unavailable("%w", errClosed)

	case ctx.Err() != nil:
		return OutcomeCanceled, h.unavailable("call abandoned: %w", context.Cause(ctx))

	case status.Code(err) == codes.Unavailable || inst.exited():
		// The connection broke: the process died or is unusable.
		h.mu.Lock()
		if h.inst == inst {
			h.diedLocked(inst, err)
		}
		h.mu.Unlock()
		return OutcomeCrashed, h.unavailable("plugin process failed: %w", err)

	default:
		// The plugin answered, with an error status or garbage.
		h.mu.Lock()
		if h.inst == inst {
			h.timeouts = 0
		}
		h.mu.Unlock()
		h.log.Warn("validator plugin call failed", "pid", inst.pid, "error", err)
		return OutcomeError, h.unavailable("plugin error: %w", err)
	}
}

// timedOut reports whether the call failed for its per-call timeout (not
// for the caller's deadline). The plugin's gRPC server may end the stream
// at the deadline a moment before the host's timer fires, so a
// DeadlineExceeded status counts when the per-call deadline was the
// earlier one.
func timedOut(ctx, callCtx context.Context, err error) bool {
	if errors.Is(context.Cause(callCtx), errCallTimeout) {
		return true
	}
	if status.Code(err) != codes.DeadlineExceeded || ctx.Err() != nil {
		return false
	}
	callDeadline, _ := callCtx.Deadline()
	callerDeadline, ok := ctx.Deadline()
	return !ok || callDeadline.Before(callerDeadline)
}

// diedLocked drops the instance after its process died and delays the
// next start.
func (h *Host) diedLocked(inst *instance, err error) {
	h.failures++
	d := backoff(h.failures)
	h.retryAt, h.lastErr = time.Now().Add(d), fmt.Errorf("plugin process %d died: %w", inst.pid, err)
	h.log.Warn("validator plugin died; restarting at a call after the backoff", "pid", inst.pid, "error", err, "retry_in", d)
	h.dropLocked(StopCrash)
}

// dropLocked forgets the current instance, counts its stop for reason and
// kills it in the background.
func (h *Host) dropLocked(reason string) {
	inst := h.inst
	h.inst, h.timeouts = nil, 0
	if inst == nil || h.closed {
		return
	}
	h.stats.stopped(reason)
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		inst.kill()
	}()
}

func (h *Host) unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: tenant %s: %w", ErrUnavailable, h.cfg.Tenant, fmt.Errorf(format, args...))
}

// pid returns the pid of the running process, 0 if none (for tests).
func (h *Host) pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inst == nil {
		return 0
	}
	return h.inst.pid
}

// backoff is the delay before the next start after n consecutive
// failures: 100ms doubling up to 30s.
func backoff(n int) time.Duration {
	if n < 1 {
		return 0
	}
	if n > 16 {
		return maxBackoff
	}
	return min(minBackoff<<(n-1), maxBackoff)
}

// batchScopes returns the distinct non-empty scopes of events, sorted.
func batchScopes(events []syncdata.ValidationEvent) []string {
	var scopes []string
	for _, ev := range events {
		if ev.Scope != "" {
			scopes = append(scopes, ev.Scope)
		}
	}
	slices.Sort(scopes)
	return slices.Compact(scopes)
}
