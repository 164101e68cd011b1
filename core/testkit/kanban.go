package testkit

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/syncplane/syncplane/core/schema"
)

// KanbanDir is the folder of the demo tenant's schema
// (core/tenant/demo/prisma), the kanban app of prisma-idb's example.
func KanbanDir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testkit: cannot locate its own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "tenant", "demo", "prisma")
}

// Kanban parses the demo tenant's schema (KanbanDir) with its ownership
// rooted at User, as the demo tenant's manifest has it.
func Kanban(t testing.TB) (*schema.Schema, *schema.Ownership) {
	t.Helper()
	sch, err := schema.Load(KanbanDir(t))
	if err != nil {
		t.Fatal(err)
	}
	own, err := schema.BuildOwnership(sch, "User", nil)
	if err != nil {
		t.Fatal(err)
	}
	return sch, own
}

// KanbanTime is the createdAt of the kanban fixture's records and events.
const KanbanTime = "2026-11-25T10:00:00.000Z"

// User is a payload of the kanban schema's User.
func User(id string) map[string]any {
	return map[string]any{"id": id, "name": "User " + id, "email": id + "@example.com", "emailVerified": false,
		"image": nil, "createdAt": KanbanTime, "updatedAt": KanbanTime, "isAnonymous": nil}
}

// Board is a payload of the kanban schema's Board.
func Board(id, userID, name string) map[string]any {
	return map[string]any{"id": id, "name": name, "createdAt": KanbanTime, "userId": userID}
}

// Todo is a payload of the kanban schema's Todo.
func Todo(id, boardID, title string) map[string]any {
	return map[string]any{"id": id, "title": title, "description": nil, "isCompleted": false, "createdAt": KanbanTime, "boardId": boardID}
}

// OutboxEvent is an event of a push body as the prisma-idb client sends
// it: the event with the client's bookkeeping fields.
func OutboxEvent(id, model, op string, payload any) map[string]any {
	return map[string]any{"id": id, "entityType": model, "operation": op, "payload": payload,
		"createdAt": KanbanTime, "tries": 0, "lastError": nil, "synced": false,
		"syncedAt": nil, "retryable": true, "lastAttemptedAt": nil}
}
