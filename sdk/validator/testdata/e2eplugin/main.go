// Command e2eplugin is the validator plugin the end-to-end test of
// sdk/validator builds and runs under go-plugin. What it does to an event
// depends on the event's model.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/syncplane/syncplane/sdk/validator"
)

func main() {
	validator.Serve(validator.WithInfo(validator.Func(check), validator.Info{
		Name: "e2e", Version: "1.2.3", Capabilities: []string{"reader"},
	}))
}

func check(ctx context.Context, req *validator.Request) (*validator.Response, error) {
	res := validator.Allow(req)
	for i, ev := range req.Events {
		switch ev.Model {
		case "Board": // non-empty and unique, through the host reader
			name, _ := ev.Payload["name"].(string)
			if name == "" {
				res.Reject(i, "board name must not be empty")
				continue
			}
			recs, err := req.Find(ctx, "Board", map[string]any{"name": name}, 1)
			if errors.Is(err, validator.ErrNoReader) {
				res.Reject(i, "no reader")
				continue
			}
			if err != nil {
				return nil, err
			}
			n, err := req.Count(ctx, "Board", nil)
			if err != nil {
				return nil, err
			}
			if len(recs) > 0 {
				res.Reject(i, "board name %q is taken by %v (%d boards)", name, recs[0]["id"], n)
			}
		case "Echo": // what arrived
			res.Reject(i, "%s %s %s %s %v %v %s", req.Tenant, req.Subject, ev.ID, ev.Operation, ev.Key, ev.Payload, ev.Scope)
		case "Env": // the plugin's environment
			res.Reject(i, "%q", os.Getenv("SYNCPLANE_E2E_SECRET"))
		case "Log":
			validator.Logger().Warn("logged by the plugin", "event", ev.ID)
		case "Panic":
			panic(fmt.Sprintf("panic on %s", ev.ID))
		case "Error":
			return nil, errors.New("cannot decide")
		case "Short":
			return &validator.Response{}, nil
		case "Hang":
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	return res, nil
}
