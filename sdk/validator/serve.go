package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syncplane/syncplane/sdk/pluginwire"
	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
	"github.com/syncplane/syncplane/sdk/validator/internal/convert"
)

// Serve runs v as a syncplane validator plugin; call it from main. It
// returns when the host stops the plugin. The host starts the program
// (go-plugin over gRPC); run by hand, it prints that it is a plugin and
// exits 1.
//
// Inside Serve:
//   - a panic in v (or in Info) is recovered: that call fails with gRPC
//     code Internal ("validator panicked"), the stack is logged, and the
//     process keeps serving (a panic in a goroutine v starts still crashes
//     the process; the host then restarts it);
//   - an error from v fails the call (code Unknown, or DeadlineExceeded /
//     Canceled when the call's context is done), as do a nil Response and
//     one without exactly one verdict per event (code Internal): the host
//     then writes none of the batch's events, never a partial allow;
//   - logs are JSON on standard error (see Logger); standard output belongs
//     to the handshake.
func Serve(v Validator) {
	if v == nil {
		panic("validator: Serve with a nil Validator")
	}
	log := Logger()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: pluginwire.Handshake,
		Plugins: pluginwire.Map(&pluginwire.Plugin{
			Impl: func(b *plugin.GRPCBroker) validatorv1.ValidatorServer {
				return newServer(v, b.Dial, log)
			},
		}),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.ChainUnaryInterceptor(recoverUnary(log)))
			return grpc.NewServer(opts...)
		},
	})
}

// server is the plugin side of the Validator service.
type server struct {
	validatorv1.UnimplementedValidatorServer
	v       Validator
	readers *readers
}

func newServer(v Validator, dial dialFunc, log *slog.Logger) *server {
	return &server{v: v, readers: newReaders(dial, log)}
}

// Validate decodes the batch, calls the validator and encodes its verdicts.
func (s *server) Validate(ctx context.Context, pb *validatorv1.ValidateRequest) (*validatorv1.ValidateResponse, error) {
	evs, err := convert.EventsFromProto(pb.GetEvents())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "validator: %v", err)
	}
	req := &Request{Tenant: pb.GetTenant(), Subject: pb.GetSubject(), Events: make([]Event, len(evs))}
	for i, ev := range evs {
		req.Events[i] = Event{
			ID: ev.ID, Model: ev.Model, Operation: Operation(ev.Operation),
			Key: ev.Key, Payload: ev.Payload, Scope: ev.Scope,
		}
	}
	if id := pb.GetReaderBrokerId(); id != 0 {
		req.Reader = &hostReader{conn: s.readers.get(id), callID: pb.GetCallId()}
	}

	res, err := s.v.Validate(ctx, req)
	switch {
	case err != nil:
		return nil, validateError(ctx, err)
	case res == nil:
		return nil, status.Error(codes.Internal, "validator returned no response")
	case len(res.Verdicts) != len(evs):
		return nil, status.Errorf(codes.Internal, "validator returned %d verdicts for %d events", len(res.Verdicts), len(evs))
	}
	vs := make([]convert.Verdict, len(res.Verdicts))
	for i, v := range res.Verdicts {
		vs[i] = convert.Verdict(v)
	}
	return &validatorv1.ValidateResponse{Verdicts: convert.VerdictsToProto(vs)}, nil
}

// Info answers with the validator's Info, or Unimplemented.
func (s *server) Info(context.Context, *validatorv1.InfoRequest) (*validatorv1.InfoResponse, error) {
	i, ok := s.v.(infoer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "validator has no Info")
	}
	info := i.Info()
	return convert.InfoToProto(info.Name, info.Version, info.Capabilities), nil
}

// validateError is the gRPC status of a validator's error: the context's
// code when the call's context is done (or the error is a context error),
// else Unknown.
func validateError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// recoverUnary turns a panic in a unary handler into codes.Internal and logs
// the stack, so one bad call does not take the plugin down.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("validator panicked", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "validator panicked: %v", r)
			}
		}()
		return handler(ctx, req)
	}
}

var _ validatorv1.ValidatorServer = (*server)(nil)
