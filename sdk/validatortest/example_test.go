package validatortest_test

import (
	"context"
	"fmt"

	"github.com/syncplane/syncplane/sdk/validator"
	"github.com/syncplane/syncplane/sdk/validatortest"
)

// The validator of sdk/validator's documentation, checked without building
// a plugin.
func ExampleCheck() {
	check := func(ctx context.Context, req *validator.Request) (*validator.Response, error) {
		res := validator.Allow(req)
		for i, ev := range req.Events {
			if ev.Model != "Board" || ev.Operation != validator.Create {
				continue
			}
			name := ev.Payload["name"]
			if name == "" {
				res.Reject(i, "board name must not be empty")
				continue
			}
			n, err := req.Count(ctx, "Board", map[string]any{"userId": ev.Payload["userId"], "name": name})
			if err != nil {
				return nil, err
			}
			if n > 0 {
				res.Reject(i, "a board named %q exists", name)
			}
		}
		return res, nil
	}

	res, err := validatortest.Check(context.Background(), validator.Func(check), validatortest.Request{
		Subject: "alice",
		Events: []validator.Event{
			{Model: "Board", Operation: validator.Create, Scope: "user:alice", Payload: map[string]any{"userId": "alice", "name": ""}},
			{Model: "Board", Operation: validator.Create, Scope: "user:alice", Payload: map[string]any{"userId": "alice", "name": "Home"}},
			{Model: "Board", Operation: validator.Create, Scope: "user:alice", Payload: map[string]any{"userId": "alice", "name": "Work"}},
		},
		Records: validatortest.Records{
			"user:alice": {"Board": {{"id": "b1", "userId": "alice", "name": "Home"}}},
			"user:bob":   {"Board": {{"id": "b2", "userId": "bob", "name": "Work"}}}, // not alice's scope
		},
	})
	if err != nil {
		fmt.Println("validator failed:", err)
		return
	}
	for i, v := range res.Verdicts {
		fmt.Println(i, v.Allow, v.Message)
	}
	// Output:
	// 0 false board name must not be empty
	// 1 false a board named "Home" exists
	// 2 true
}
