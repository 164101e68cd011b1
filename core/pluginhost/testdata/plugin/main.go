// Command plugin is the validator plugin of the pluginhost tests, written
// directly against go-plugin, pluginwire and validatorv1 (not sdk/validator)
// so the host is tested against the wire contract alone.
//
// What it does is chosen per event by the event's model (see validate), and
// at start by an optional file next to the executable, <path>.mode:
//
//	garbage  print a line on stdout before the handshake
//	exit     exit with status 3 before the handshake
//	noinfo   leave Info unimplemented
//
// Every start appends the pid to <path>.runs, so a test can tell whether
// the executable ran at all.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/syncplane/syncplane/sdk/pluginwire"
	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
)

func main() {
	self := os.Args[0]
	if f, err := os.OpenFile(self+".runs", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		fmt.Fprintln(f, os.Getpid())
		_ = f.Close()
	}
	// A line the host logs, and one that would panic go-plugin's own
	// stderr parser ("@message" is not a string) if the host let it parse.
	fmt.Fprintln(os.Stderr, "plugin stderr hello")
	fmt.Fprintln(os.Stderr, `{"@level":"info","@message":5,"@timestamp":"x"}`)
	b, _ := os.ReadFile(self + ".mode")
	mode := strings.TrimSpace(string(b))
	switch mode {
	case "garbage":
		fmt.Println("hello from a plugin that does not speak go-plugin")
	case "exit":
		fmt.Fprintln(os.Stderr, "exiting at start")
		os.Exit(3)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: pluginwire.Handshake,
		Plugins: pluginwire.Map(&pluginwire.Plugin{Impl: func(b *plugin.GRPCBroker) validatorv1.ValidatorServer {
			return &server{self: self, broker: b, noInfo: mode == "noinfo"}
		}}),
		GRPCServer: plugin.DefaultGRPCServer,
	})
}

type server struct {
	validatorv1.UnimplementedValidatorServer
	self   string
	broker *plugin.GRPCBroker
	noInfo bool

	mu         sync.Mutex
	reader     validatorv1.HostReaderClient
	lastCallID string

	inflight, maxInflight atomic.Int64
	hoard                 [][]byte
}

func (s *server) Info(context.Context, *validatorv1.InfoRequest) (*validatorv1.InfoResponse, error) {
	if s.noInfo {
		return nil, status.Error(codes.Unimplemented, "no info")
	}
	return &validatorv1.InfoResponse{Name: "testplugin", Version: "1.2.3", Capabilities: []string{"read"}}, nil
}

// readerClient dials the host's read service once, at the first call that
// names it (go-plugin keeps the connection info only a few seconds).
func (s *server) readerClient(id uint32) (validatorv1.HostReaderClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reader != nil || id == 0 {
		return s.reader, nil
	}
	conn, err := s.broker.Dial(id)
	if err != nil {
		return nil, err
	}
	s.reader = validatorv1.NewHostReaderClient(conn)
	return s.reader, nil
}

func (s *server) Validate(ctx context.Context, req *validatorv1.ValidateRequest) (*validatorv1.ValidateResponse, error) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		m := s.maxInflight.Load()
		if n <= m || s.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	reader, rerr := s.readerClient(req.GetReaderBrokerId())
	s.mu.Lock()
	stale := s.lastCallID
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.lastCallID = req.GetCallId()
		s.mu.Unlock()
	}()

	res := &validatorv1.ValidateResponse{}
	for _, ev := range req.GetEvents() {
		var payload map[string]any
		_ = json.Unmarshal([]byte(ev.GetPayloadJson()), &payload)
		v := &validatorv1.Verdict{Allow: true}
		switch ev.GetModel() {
		case "Hang":
			time.Sleep(time.Hour)
		case "Block":
			_ = os.WriteFile(s.self+".blocked", []byte(strconv.Itoa(os.Getpid())), 0o600)
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		case "Panic":
			panic("validator panicked")
		case "Error":
			return nil, status.Error(codes.Internal, "handler failed")
		case "Wrong":
			res.Verdicts = append(res.Verdicts, &validatorv1.Verdict{Allow: true})
		case "Alloc":
			mb, _ := payload["mb"].(float64)
			b := make([]byte, int(mb)<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			s.hoard = append(s.hoard, b)
		case "Env":
			v.Message = strings.Join(os.Environ(), "\n")
		case "Trace": // the W3C trace context the host sent in the call's metadata
			md, _ := metadata.FromIncomingContext(ctx)
			v.Message = strings.Join(md.Get("traceparent"), ",")
		case "Pid":
			v.Message = strconv.Itoa(os.Getpid())
		case "Slow":
			time.Sleep(150 * time.Millisecond)
			v.Message = strconv.FormatInt(s.maxInflight.Load(), 10)
		case "Read", "Count", "Stale":
			v.Message = s.read(ctx, reader, rerr, ev, req.GetCallId(), stale)
		}
		if msg, ok := payload["reject"].(string); ok {
			v = &validatorv1.Verdict{Allow: false, Message: msg}
		}
		res.Verdicts = append(res.Verdicts, v)
	}
	return res, nil
}

// read calls the host's read service and describes the outcome: the
// records joined by "|", the count, or "error <code>".
func (s *server) read(ctx context.Context, r validatorv1.HostReaderClient, rerr error, ev *validatorv1.Event, callID, stale string) string {
	if rerr != nil || r == nil {
		return fmt.Sprintf("no reader: %v", rerr)
	}
	switch ev.GetModel() {
	case "Count":
		res, err := r.Count(ctx, &validatorv1.CountRequest{CallId: callID, Model: "Board", WhereJson: ev.GetPayloadJson()})
		if err != nil {
			return "error " + status.Code(err).String()
		}
		return strconv.FormatInt(res.GetCount(), 10)
	case "Stale":
		callID = stale
	}
	res, err := r.Find(ctx, &validatorv1.FindRequest{CallId: callID, Model: "Board", WhereJson: ev.GetPayloadJson(), Limit: 10})
	if err != nil {
		return "error " + status.Code(err).String()
	}
	return strings.Join(res.GetRecordsJson(), "|")
}
