package validator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc"

	"github.com/syncplane/syncplane/sdk/proto/validatorv1"
	"github.com/syncplane/syncplane/sdk/validator/internal/convert"
)

// dialFunc opens a connection to a service the host serves through the
// go-plugin broker (GRPCBroker.Dial).
type dialFunc func(id uint32) (*grpc.ClientConn, error)

// readers holds the plugin's connections to the host's read service, one
// per broker id. The host serves one read service per plugin process and
// sends its id with every call, so in practice there is one connection,
// dialed when the first call carrying the id arrives and kept for the life
// of the process.
//
// The dial starts as soon as a call carries a new id, before the validator
// runs and whether it reads or not: go-plugin's broker keeps the host's
// connection info for only a few seconds after the host starts serving.
type readers struct {
	dial dialFunc
	log  *slog.Logger

	mu    sync.Mutex
	conns map[uint32]*readerConn
}

// readerConn is one dial, in progress (done open) or finished.
type readerConn struct {
	id     uint32
	done   chan struct{}
	conn   *grpc.ClientConn             // set before done closes, if err is nil
	client validatorv1.HostReaderClient // likewise
	err    error
}

func newReaders(dial dialFunc, log *slog.Logger) *readers {
	return &readers{dial: dial, log: log, conns: map[uint32]*readerConn{}}
}

// get returns the connection for id, starting a dial when there is none or
// the last one failed.
func (p *readers) get(id uint32) *readerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[id]; ok {
		select {
		case <-c.done:
			if c.err == nil {
				return c
			}
		default:
			return c
		}
	}
	c := &readerConn{id: id, done: make(chan struct{})}
	p.conns[id] = c
	go func() {
		defer close(c.done)
		if p.dial == nil {
			c.err = fmt.Errorf("validator: no broker to reach the host's read service")
			return
		}
		conn, err := p.dial(id)
		if err != nil {
			c.err = fmt.Errorf("validator: reach the host's read service (broker id %d): %w", id, err)
			p.log.Error("cannot reach the host's read service", "broker_id", id, "error", err)
			return
		}
		c.conn, c.client = conn, validatorv1.NewHostReaderClient(conn)
	}()
	return c
}

// close waits for dials in progress and closes every connection. The
// plugin process never needs it (its connections live as long as it does);
// tests do.
func (p *readers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, c := range p.conns {
		<-c.done
		if c.conn != nil {
			_ = c.conn.Close()
		}
		delete(p.conns, id)
	}
}

// wait returns the client once the dial is done.
func (c *readerConn) wait(ctx context.Context) (validatorv1.HostReaderClient, error) {
	select {
	case <-c.done:
		return c.client, c.err
	case <-ctx.Done():
		return nil, fmt.Errorf("validator: waiting for the host's read service: %w", context.Cause(ctx))
	}
}

// hostReader is the Reader of one Validate call: it sends the call's id
// with every read, which is how the host scopes them.
type hostReader struct {
	conn   *readerConn
	callID string
}

func (r *hostReader) Find(ctx context.Context, model string, where map[string]any, limit int) ([]map[string]any, error) {
	c, err := r.conn.wait(ctx)
	if err != nil {
		return nil, err
	}
	w, err := convert.WhereToJSON(where)
	if err != nil {
		return nil, fmt.Errorf("validator: find %s: %w", model, err)
	}
	res, err := c.Find(ctx, &validatorv1.FindRequest{CallId: r.callID, Model: model, WhereJson: w, Limit: convert.LimitToProto(limit)})
	if err != nil {
		return nil, fmt.Errorf("validator: find %s: %w", model, err)
	}
	recs, err := convert.RecordsFromProto(res.GetRecordsJson())
	if err != nil {
		return nil, fmt.Errorf("validator: find %s: %w", model, err)
	}
	return recs, nil
}

func (r *hostReader) Count(ctx context.Context, model string, where map[string]any) (int64, error) {
	c, err := r.conn.wait(ctx)
	if err != nil {
		return 0, err
	}
	w, err := convert.WhereToJSON(where)
	if err != nil {
		return 0, fmt.Errorf("validator: count %s: %w", model, err)
	}
	res, err := c.Count(ctx, &validatorv1.CountRequest{CallId: r.callID, Model: model, WhereJson: w})
	if err != nil {
		return 0, fmt.Errorf("validator: count %s: %w", model, err)
	}
	return res.GetCount(), nil
}

var _ Reader = (*hostReader)(nil)
