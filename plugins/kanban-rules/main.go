// Command kanban-rules is an example syncplane validator plugin for the
// kanban tenant (core/tenant/demo/prisma):
//
//   - a board's name is not empty and is unique among its user's boards
//     (checked against committed boards through the host's read service,
//     and against the other boards of the same batch);
//   - a todo's title is at most 200 characters.
//
// Build it, put its sha256 in the tenant's manifest, and syncplane runs it
// once per pushed batch; see README.md.
package main

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/syncplane/syncplane/sdk/validator"
)

// MaxTitle is the longest todo title allowed, in characters.
const MaxTitle = 200

func main() {
	validator.Serve(validator.WithInfo(validator.Func(Check), validator.Info{Name: "kanban-rules", Version: "1.0.0"}))
}

// Check applies the kanban rules to a batch.
func Check(ctx context.Context, req *validator.Request) (*validator.Response, error) {
	res := validator.Allow(req)
	named := map[string]string{} // userId+"\x00"+name → board id, within the batch
	for i, ev := range req.Events {
		if ev.Operation == validator.Delete {
			continue
		}
		switch ev.Model {
		case "Todo":
			if title, _ := ev.Payload["title"].(string); utf8.RuneCountInString(title) > MaxTitle {
				res.Reject(i, "todo title is %d characters long; at most %d are allowed", utf8.RuneCountInString(title), MaxTitle)
			}
		case "Board":
			name, _ := ev.Payload["name"].(string)
			userID, _ := ev.Payload["userId"].(string)
			id, _ := ev.Payload["id"].(string)
			if strings.TrimSpace(name) == "" {
				res.Reject(i, "board name must not be empty")
				continue
			}
			key := userID + "\x00" + name
			if other, ok := named[key]; ok && other != id {
				res.Reject(i, "a board named %q is already in this batch", name)
				continue
			}
			named[key] = id
			taken, err := takenByOther(ctx, req, userID, name, id)
			if err != nil {
				return nil, err // could not decide: the host fails the batch closed
			}
			if taken {
				res.Reject(i, "a board named %q exists already", name)
			}
		}
	}
	return res, nil
}

// takenByOther reports whether another committed board of the user has the
// name.
func takenByOther(ctx context.Context, req *validator.Request, userID, name, id string) (bool, error) {
	boards, err := req.Find(ctx, "Board", map[string]any{"userId": userID, "name": name}, 2)
	if err != nil {
		return false, fmt.Errorf("find boards: %w", err)
	}
	for _, b := range boards {
		if b["id"] != id {
			return true, nil
		}
	}
	return false, nil
}
