package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

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

// serveBufconn serves register on an in-memory listener until the end of
// the test and returns a dialer that opens client connections to it (each
// closed at the end of the test).
func serveBufconn(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) func() (*grpc.ClientConn, error) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer(opts...)
	register(s)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return func() (*grpc.ClientConn, error) {
		return grpc.NewClient("passthrough:///bufconn",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
}

// startServer runs the plugin side of Validator for v in-process, with the
// panic interceptor Serve installs, and returns the host's client.
func startServer(t *testing.T, v Validator, dial dialFunc, log *slog.Logger) validatorv1.ValidatorClient {
	t.Helper()
	srv := newServer(v, dial, log)
	t.Cleanup(srv.readers.close)
	connect := serveBufconn(t, func(s *grpc.Server) { validatorv1.RegisterValidatorServer(s, srv) },
		grpc.ChainUnaryInterceptor(recoverUnary(log)))
	conn, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return validatorv1.NewValidatorClient(conn)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestServerValidate(t *testing.T) {
	t.Parallel()
	twoEvents := []*validatorv1.Event{
		{Id: "e1", Model: "Board", Operation: "create", Scope: "user:a", KeyJson: `["b1"]`, PayloadJson: `{"name":""}`},
		{Id: "e2", Model: "Todo", Operation: "update", Scope: "user:a", KeyJson: `["t1"]`, PayloadJson: `{"title":"x","n":2}`},
	}
	tests := map[string]struct {
		fn       Func
		events   []*validatorv1.Event
		timeout  time.Duration
		want     []*validatorv1.Verdict
		wantCode codes.Code
		wantMsg  string
	}{
		"allow and reject": {
			fn: func(_ context.Context, req *Request) (*Response, error) {
				res := Allow(req)
				for i, ev := range req.Events {
					if ev.Model == "Board" && ev.Operation == Create && ev.Payload["name"] == "" {
						res.Reject(i, "board name must not be empty")
					}
				}
				return res, nil
			},
			events: twoEvents,
			want:   []*validatorv1.Verdict{{Message: "board name must not be empty"}, {Allow: true}},
		},
		"decoded request": {
			fn: func(_ context.Context, req *Request) (*Response, error) {
				want := &Request{Tenant: "t1", Subject: "alice", Events: []Event{
					{ID: "e1", Model: "Board", Operation: Create, Scope: "user:a", Key: []any{"b1"}, Payload: map[string]any{"name": ""}},
					{ID: "e2", Model: "Todo", Operation: Update, Scope: "user:a", Key: []any{"t1"}, Payload: map[string]any{"title": "x", "n": float64(2)}},
				}}
				if diff := cmp.Diff(want, req); diff != "" {
					return nil, fmt.Errorf("request (-want +got):\n%s", diff)
				}
				return Allow(req), nil
			},
			events: twoEvents,
			want:   []*validatorv1.Verdict{{Allow: true}, {Allow: true}},
		},
		"empty reject message": {
			fn: func(_ context.Context, req *Request) (*Response, error) {
				return &Response{Verdicts: make([]Verdict, len(req.Events))}, nil
			},
			events: twoEvents[:1],
			want:   []*validatorv1.Verdict{{Message: "rejected by the tenant's validator"}},
		},
		"empty batch": {
			fn:     func(_ context.Context, req *Request) (*Response, error) { return Allow(req), nil },
			events: nil,
			want:   nil,
		},
		"error": {
			fn: func(context.Context, *Request) (*Response, error) {
				return nil, errors.New("database of my own is down")
			},
			events:   twoEvents,
			wantCode: codes.Unknown,
			wantMsg:  "database of my own is down",
		},
		"nil response": {
			fn:       func(context.Context, *Request) (*Response, error) { return nil, nil },
			events:   twoEvents,
			wantCode: codes.Internal,
			wantMsg:  "no response",
		},
		"short response": {
			fn: func(_ context.Context, req *Request) (*Response, error) {
				return &Response{Verdicts: []Verdict{{Allow: true}}}, nil
			},
			events:   twoEvents,
			wantCode: codes.Internal,
			wantMsg:  "1 verdicts for 2 events",
		},
		"long response": {
			fn: func(_ context.Context, req *Request) (*Response, error) {
				return &Response{Verdicts: make([]Verdict, 3)}, nil
			},
			events:   twoEvents,
			wantCode: codes.Internal,
			wantMsg:  "3 verdicts for 2 events",
		},
		"panic": {
			fn:       func(context.Context, *Request) (*Response, error) { panic("boom") },
			events:   twoEvents,
			wantCode: codes.Internal,
			wantMsg:  "validator panicked: boom",
		},
		"reject out of range": {
			fn: func(_ context.Context, req *Request) (*Response, error) {
				res := Allow(req)
				res.Reject(5, "x")
				return res, nil
			},
			events:   twoEvents,
			wantCode: codes.Internal,
			wantMsg:  "validator panicked",
		},
		"bad payload": {
			fn:       func(_ context.Context, req *Request) (*Response, error) { return Allow(req), nil },
			events:   []*validatorv1.Event{{Id: "e1", PayloadJson: "{"}},
			wantCode: codes.InvalidArgument,
			wantMsg:  "event 0 (e1)",
		},
		"past the deadline": {
			fn: func(ctx context.Context, req *Request) (*Response, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
			events:   twoEvents,
			timeout:  50 * time.Millisecond,
			wantCode: codes.DeadlineExceeded,
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			c := startServer(t, tc.fn, nil, discard())
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			res, err := c.Validate(ctx, &validatorv1.ValidateRequest{Tenant: "t1", Subject: "alice", Events: tc.events})
			if tc.wantCode != codes.OK {
				st := status.Convert(err)
				if st.Code() != tc.wantCode || !strings.Contains(st.Message(), tc.wantMsg) {
					t.Fatalf("err = %v, want code %v with %q", err, tc.wantCode, tc.wantMsg)
				}
				if res != nil {
					t.Errorf("a failed call returned a response: %v", res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, res.GetVerdicts(), protocmp.Transform()); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerPanicKeepsServing(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	c := startServer(t, Func(func(_ context.Context, req *Request) (*Response, error) {
		if req.Subject == "mallory" {
			var m map[string]int
			m["x"]++ // nil map write: a runtime panic
		}
		return Allow(req), nil
	}), nil, newLogger(&logs))
	ctx := t.Context()
	events := []*validatorv1.Event{{Id: "e1", Model: "Board"}}

	_, err := c.Validate(ctx, &validatorv1.ValidateRequest{Subject: "mallory", Events: events})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panicking call: err = %v, want Internal", err)
	}
	res, err := c.Validate(ctx, &validatorv1.ValidateRequest{Subject: "alice", Events: events})
	if err != nil || len(res.GetVerdicts()) != 1 || !res.GetVerdicts()[0].GetAllow() {
		t.Fatalf("call after the panic = %v, %v; want one allow", res, err)
	}

	var entry map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(logs.String(), "\n", 2)[0]), &entry); err != nil {
		t.Fatalf("log line is not JSON: %v\n%s", err, logs.String())
	}
	if entry["@level"] != "error" || entry["@message"] != "validator panicked" ||
		entry["method"] != "/syncplane.validator.v1.Validator/Validate" ||
		!strings.Contains(fmt.Sprint(entry["stack"]), "server_test.go") {
		t.Errorf("panic log entry = %v", entry)
	}
}

func TestServerInfo(t *testing.T) {
	t.Parallel()
	allow := Func(func(_ context.Context, req *Request) (*Response, error) { return Allow(req), nil })
	t.Run("info=none", func(t *testing.T) {
		t.Parallel()
		_, err := startServer(t, allow, nil, discard()).Info(t.Context(), &validatorv1.InfoRequest{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("Info err = %v, want Unimplemented", err)
		}
	})
	t.Run("info=set", func(t *testing.T) {
		t.Parallel()
		v := WithInfo(allow, Info{Name: "kanban-rules", Version: "1.0.0", Capabilities: []string{"reader"}})
		got, err := startServer(t, v, nil, discard()).Info(t.Context(), &validatorv1.InfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := &validatorv1.InfoResponse{Name: "kanban-rules", Version: "1.0.0", Capabilities: []string{"reader"}}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("Info (-want +got):\n%s", diff)
		}
	})
}

// fakeHostReader is the host's read service made of funcs.
type fakeHostReader struct {
	validatorv1.UnimplementedHostReaderServer
	find  func(context.Context, *validatorv1.FindRequest) (*validatorv1.FindResponse, error)
	count func(context.Context, *validatorv1.CountRequest) (*validatorv1.CountResponse, error)
}

func (f *fakeHostReader) Find(ctx context.Context, r *validatorv1.FindRequest) (*validatorv1.FindResponse, error) {
	return f.find(ctx, r)
}

func (f *fakeHostReader) Count(ctx context.Context, r *validatorv1.CountRequest) (*validatorv1.CountResponse, error) {
	return f.count(ctx, r)
}

// readingValidator rejects every event whose name a committed Board of the
// same scope already has, reporting what it read in the message.
var readingValidator = Func(func(ctx context.Context, req *Request) (*Response, error) {
	res := Allow(req)
	for i, ev := range req.Events {
		recs, err := req.Find(ctx, "Board", map[string]any{"name": ev.Payload["name"]}, 5)
		if err != nil {
			return nil, err
		}
		n, err := req.Count(ctx, "Board", nil)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			res.Reject(i, "taken by %v of %d", recs[0]["id"], n)
		}
	}
	return res, nil
})

func TestServerReader(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		seen  []string
		dials atomic.Int32
	)
	host := &fakeHostReader{
		find: func(_ context.Context, r *validatorv1.FindRequest) (*validatorv1.FindResponse, error) {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("find %s %s %s %d", r.GetCallId(), r.GetModel(), r.GetWhereJson(), r.GetLimit()))
			mu.Unlock()
			if r.GetWhereJson() == `{"name":"Home"}` {
				return &validatorv1.FindResponse{RecordsJson: []string{`{"id":"b1","name":"Home"}`}}, nil
			}
			return &validatorv1.FindResponse{}, nil
		},
		count: func(_ context.Context, r *validatorv1.CountRequest) (*validatorv1.CountResponse, error) {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("count %s %s %s", r.GetCallId(), r.GetModel(), r.GetWhereJson()))
			mu.Unlock()
			return &validatorv1.CountResponse{Count: 3}, nil
		},
	}
	hostDial := serveBufconn(t, func(s *grpc.Server) { validatorv1.RegisterHostReaderServer(s, host) })
	dial := func(id uint32) (*grpc.ClientConn, error) {
		dials.Add(1)
		if id != 7 {
			return nil, fmt.Errorf("no service %d", id)
		}
		return hostDial()
	}
	c := startServer(t, readingValidator, dial, discard())
	ctx := t.Context()
	validate := func(callID string, brokerID uint32, names ...string) ([]*validatorv1.Verdict, error) {
		req := &validatorv1.ValidateRequest{Tenant: "t1", Subject: "alice", ReaderBrokerId: brokerID, CallId: callID}
		for i, n := range names {
			req.Events = append(req.Events, &validatorv1.Event{Id: fmt.Sprint("e", i), Model: "Board", PayloadJson: fmt.Sprintf(`{"name":%q}`, n)})
		}
		res, err := c.Validate(ctx, req)
		return res.GetVerdicts(), err
	}

	t.Run("broker=none", func(t *testing.T) {
		_, err := validate("c0", 0, "Home")
		if st := status.Convert(err); st.Code() != codes.Unknown || !strings.Contains(st.Message(), ErrNoReader.Error()) {
			t.Errorf("err = %v, want Unknown carrying ErrNoReader", err)
		}
	})
	t.Run("broker=unreachable", func(t *testing.T) {
		_, err := validate("c0", 9, "Home")
		if st := status.Convert(err); st.Code() != codes.Unknown || !strings.Contains(st.Message(), "no service 9") {
			t.Errorf("err = %v, want Unknown carrying the dial error", err)
		}
	})
	t.Run("broker=served", func(t *testing.T) {
		before := dials.Load()
		got, err := validate("c1", 7, "Home", "Work")
		if err != nil {
			t.Fatal(err)
		}
		want := []*validatorv1.Verdict{{Message: "taken by b1 of 3"}, {Allow: true}}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("verdicts (-want +got):\n%s", diff)
		}
		if _, err := validate("c2", 7, "Other"); err != nil {
			t.Fatal(err)
		}
		if n := dials.Load() - before; n != 1 {
			t.Errorf("%d dials for two calls with one broker id, want 1", n)
		}
		mu.Lock()
		defer mu.Unlock()
		wantSeen := []string{
			`find c1 Board {"name":"Home"} 5`, `count c1 Board {}`,
			`find c1 Board {"name":"Work"} 5`, `count c1 Board {}`,
			`find c2 Board {"name":"Other"} 5`, `count c2 Board {}`,
		}
		if diff := cmp.Diff(wantSeen, seen); diff != "" {
			t.Errorf("host reads (-want +got):\n%s", diff)
		}
	})
}

func TestReadersRetryAFailedDial(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	p := newReaders(func(uint32) (*grpc.ClientConn, error) {
		if n.Add(1) == 1 {
			return nil, errors.New("not yet")
		}
		return grpc.NewClient("passthrough:///unused", grpc.WithTransportCredentials(insecure.NewCredentials()))
	}, discard())
	defer p.close()
	if _, err := p.get(1).wait(t.Context()); err == nil || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("first dial: err = %v, want the dial error", err)
	}
	if _, err := p.get(1).wait(t.Context()); err != nil {
		t.Fatalf("second dial: %v", err)
	}
	if _, err := p.get(1).wait(t.Context()); err != nil || n.Load() != 2 {
		t.Fatalf("third get: err = %v after %d dials; want the kept connection after 2", err, n.Load())
	}
}

func TestReadersWaitHonoursTheContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	p := newReaders(func(uint32) (*grpc.ClientConn, error) {
		<-release
		return nil, errors.New("late")
	}, discard())
	defer p.close()
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	r := &hostReader{conn: p.get(1), callID: "c"}
	if _, err := r.Count(ctx, "Board", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}

func TestLoggerWritesHclogJSON(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := newLogger(&buf)
	log.Debug("d")
	log.Info("hello", "tenant", "t1", slog.Group("g", "msg", "inner"))
	log.Warn("w")
	log.Error("e")
	log.Log(context.Background(), slog.LevelDebug-4, "t")
	var got []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		ts, err := time.Parse(hclogTime, fmt.Sprint(m["@timestamp"]))
		if err != nil || time.Since(ts) > time.Minute {
			t.Errorf("@timestamp %v does not parse as hclog's (%v)", m["@timestamp"], err)
		}
		delete(m, "@timestamp")
		got = append(got, m)
	}
	want := []map[string]any{
		{"@level": "debug", "@message": "d"},
		{"@level": "info", "@message": "hello", "tenant": "t1", "g": map[string]any{"msg": "inner"}},
		{"@level": "warn", "@message": "w"},
		{"@level": "error", "@message": "e"},
		{"@level": "trace", "@message": "t"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	if Logger() != Logger() {
		t.Error("Logger returns a new logger each call")
	}
}
