package validator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/syncplane/syncplane/sdk/pluginwire"
	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildPlugin builds testdata/e2eplugin into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "e2eplugin")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/e2eplugin").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// e2eHostReader is the host's read service as the test serves it: the
// committed Boards are {id: b1, name: Taken} and two more; it records every
// read and refuses unknown call ids.
type e2eHostReader struct {
	validatorv1.UnimplementedHostReaderServer
	mu    sync.Mutex
	calls map[string]bool // the call ids of calls in flight
	reads []string
}

func (h *e2eHostReader) open(callID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[callID] = true
}

func (h *e2eHostReader) check(callID, read string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads = append(h.reads, read)
	if !h.calls[callID] {
		return status.Errorf(codes.PermissionDenied, "unknown call %q", callID)
	}
	return nil
}

func (h *e2eHostReader) Find(_ context.Context, r *validatorv1.FindRequest) (*validatorv1.FindResponse, error) {
	if err := h.check(r.GetCallId(), fmt.Sprintf("find %s %s %s %d", r.GetCallId(), r.GetModel(), r.GetWhereJson(), r.GetLimit())); err != nil {
		return nil, err
	}
	var where map[string]any
	if err := json.Unmarshal([]byte(r.GetWhereJson()), &where); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if where["name"] == "Taken" {
		return &validatorv1.FindResponse{RecordsJson: []string{`{"id":"b1","name":"Taken"}`}}, nil
	}
	return &validatorv1.FindResponse{}, nil
}

func (h *e2eHostReader) Count(_ context.Context, r *validatorv1.CountRequest) (*validatorv1.CountResponse, error) {
	if err := h.check(r.GetCallId(), fmt.Sprintf("count %s %s %s", r.GetCallId(), r.GetModel(), r.GetWhereJson())); err != nil {
		return nil, err
	}
	return &validatorv1.CountResponse{Count: 3}, nil
}

// TestServeEndToEnd builds a real plugin and drives it with go-plugin's
// client, as core/pluginhost does, with the broker multiplexed and not.
func TestServeEndToEnd(t *testing.T) {
	bin := buildPlugin(t)
	t.Setenv("SYNCPLANE_E2E_SECRET", "hunter2") // must not reach the plugin
	for _, multiplex := range []bool{false, true} {
		t.Run(fmt.Sprintf("multiplex=%v", multiplex), func(t *testing.T) {
			testServeEndToEnd(t, bin, multiplex)
		})
	}
}

func testServeEndToEnd(t *testing.T, bin string, multiplex bool) {
	var logs syncBuffer
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:     pluginwire.Handshake,
		Plugins:             pluginwire.Map(&pluginwire.Plugin{}),
		Cmd:                 exec.Command(bin),
		AllowedProtocols:    []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:         true,
		GRPCBrokerMultiplex: multiplex,
		Logger:              hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug, JSONFormat: true}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start plugin: %v\n%s", err, logs.String())
	}
	raw, err := rpc.Dispense(pluginwire.Name)
	if err != nil {
		t.Fatal(err)
	}
	pc := raw.(*pluginwire.Client)
	ctx := t.Context()

	type ev struct{ model, payload string }
	validate := func(ctx context.Context, brokerID uint32, callID string, evs ...ev) ([]*validatorv1.Verdict, error) {
		req := &validatorv1.ValidateRequest{Tenant: "t1", Subject: "alice", ReaderBrokerId: brokerID, CallId: callID}
		for i, e := range evs {
			req.Events = append(req.Events, &validatorv1.Event{
				Id: fmt.Sprint("e", i), Model: e.model, Operation: "create", Scope: "user:alice",
				KeyJson: fmt.Sprintf(`["k%d"]`, i), PayloadJson: e.payload,
			})
		}
		res, err := pc.Validator.Validate(ctx, req)
		return res.GetVerdicts(), err
	}
	wantVerdicts := func(t *testing.T, want, got []*validatorv1.Verdict, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("verdicts (-want +got):\n%s", diff)
		}
	}
	wantCode := func(t *testing.T, code codes.Code, msg string, err error) {
		t.Helper()
		if st := status.Convert(err); st.Code() != code || !strings.Contains(st.Message(), msg) {
			t.Errorf("err = %v, want code %v with %q", err, code, msg)
		}
	}
	wantLog := func(t *testing.T, parts ...string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for line := range strings.Lines(logs.String()) {
				if containsAll(line, parts) {
					return
				}
			}
		}
		t.Errorf("no host log line with %q in:\n%s", parts, logs.String())
	}

	t.Run("rpc=Info", func(t *testing.T) {
		got, err := pc.Validator.Info(ctx, &validatorv1.InfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := &validatorv1.InfoResponse{Name: "e2e", Version: "1.2.3", Capabilities: []string{"reader"}}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("Info (-want +got):\n%s", diff)
		}
	})

	t.Run("validate=allow-reject", func(t *testing.T) {
		got, err := validate(ctx, 0, "", ev{"Board", `{"name":""}`}, ev{"Todo", `{"title":"x"}`}, ev{"Board", `{"name":"Fresh"}`})
		wantVerdicts(t, []*validatorv1.Verdict{
			{Message: "board name must not be empty"},
			{Allow: true},
			{Message: "no reader"}, // no reader_broker_id: Find returns ErrNoReader
		}, got, err)
	})

	t.Run("validate=decoded", func(t *testing.T) {
		got, err := validate(ctx, 0, "", ev{"Echo", `{"n":1,"tags":["a"]}`})
		wantVerdicts(t, []*validatorv1.Verdict{{Message: "t1 alice e0 create [k0] map[n:1 tags:[a]] user:alice"}}, got, err)
	})

	t.Run("validate=environment", func(t *testing.T) {
		got, err := validate(ctx, 0, "", ev{"Env", `{}`})
		wantVerdicts(t, []*validatorv1.Verdict{{Message: `""`}}, got, err)
	})

	t.Run("validate=host-reader", func(t *testing.T) {
		host := &e2eHostReader{calls: map[string]bool{}}
		id := pc.Broker.NextId()
		go pc.Broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(opts...)
			validatorv1.RegisterHostReaderServer(s, host)
			return s
		})
		host.open("call-1")
		got, err := validate(ctx, id, "call-1", ev{"Board", `{"name":"Taken"}`}, ev{"Board", `{"name":"Fresh"}`})
		wantVerdicts(t, []*validatorv1.Verdict{
			{Message: `board name "Taken" is taken by b1 (3 boards)`},
			{Allow: true},
		}, got, err)

		// The same connection serves the next call (a second dial of the id
		// could not succeed without a second AcceptAndServe).
		host.open("call-2")
		got, err = validate(ctx, id, "call-2", ev{"Board", `{"name":"Other"}`})
		wantVerdicts(t, []*validatorv1.Verdict{{Allow: true}}, got, err)

		// A call id the host does not know is refused; the plugin fails the call.
		_, err = validate(ctx, id, "call-x", ev{"Board", `{"name":"Other"}`})
		wantCode(t, codes.Unknown, "unknown call", err)

		host.mu.Lock()
		defer host.mu.Unlock()
		want := []string{
			`find call-1 Board {"name":"Taken"} 1`, `count call-1 Board {}`,
			`find call-1 Board {"name":"Fresh"} 1`, `count call-1 Board {}`,
			`find call-2 Board {"name":"Other"} 1`, `count call-2 Board {}`,
			`find call-x Board {"name":"Other"} 1`,
		}
		if diff := cmp.Diff(want, host.reads); diff != "" {
			t.Errorf("host reads (-want +got):\n%s", diff)
		}
	})

	t.Run("validate=panic", func(t *testing.T) {
		_, err := validate(ctx, 0, "", ev{"Todo", `{}`}, ev{"Panic", `{}`})
		wantCode(t, codes.Internal, "validator panicked: panic on e1", err)
		wantLog(t, `"@level":"error"`, `"@message":"validator panicked"`, `panic on e1`, `"stack":`)
		got, err := validate(ctx, 0, "", ev{"Todo", `{}`})
		wantVerdicts(t, []*validatorv1.Verdict{{Allow: true}}, got, err)
		if client.Exited() {
			t.Error("the plugin exited after a panic")
		}
	})

	t.Run("validate=error", func(t *testing.T) {
		_, err := validate(ctx, 0, "", ev{"Error", `{}`})
		wantCode(t, codes.Unknown, "cannot decide", err)
	})

	t.Run("validate=short", func(t *testing.T) {
		_, err := validate(ctx, 0, "", ev{"Todo", `{}`}, ev{"Short", `{}`})
		wantCode(t, codes.Internal, "0 verdicts for 2 events", err)
	})

	t.Run("validate=deadline", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := validate(cctx, 0, "", ev{"Hang", `{}`})
		wantCode(t, codes.DeadlineExceeded, "", err)
		got, err := validate(ctx, 0, "", ev{"Todo", `{}`})
		wantVerdicts(t, []*validatorv1.Verdict{{Allow: true}}, got, err)
	})

	t.Run("log=plugin", func(t *testing.T) {
		got, err := validate(ctx, 0, "", ev{"Log", `{}`})
		wantVerdicts(t, []*validatorv1.Verdict{{Allow: true}}, got, err)
		wantLog(t, `"@level":"warn"`, `"@message":"logged by the plugin"`, `"event":"e0"`)
	})

	client.Kill()
	if !client.Exited() {
		t.Error("the plugin is still running after Kill")
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
