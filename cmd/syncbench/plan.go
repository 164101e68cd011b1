package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// isoMillis is how the protocol writes DateTime values.
const isoMillis = "2006-01-02T15:04:05.000Z"

// Models of the kanban schema, parents first.
var modelOrder = []string{"User", "Board", "Todo"}

// Event is one outbox event as syncbench generates it.
type Event struct {
	ID         string
	EntityType string
	Operation  string
	Payload    map[string]any
}

// MarshalJSON writes the event as a prisma-idb OutboxEvent with every
// envelope field.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"id":              e.ID,
		"entityType":      e.EntityType,
		"operation":       e.Operation,
		"payload":         e.Payload,
		"createdAt":       time.Now().UTC().Format(isoMillis),
		"tries":           0,
		"lastError":       nil,
		"synced":          false,
		"syncedAt":        nil,
		"retryable":       true,
		"lastAttemptedAt": nil,
	})
}

// recordKey names a record across models: "Model/id".
func recordKey(model, id string) string { return model + "/" + id }

// UserPlan is everything one user (one scope) writes.
type UserPlan struct {
	ID string
	// Rounds are the creates, then the --mix changes; each in order.
	Rounds [2][]Event
	// Final is the state the user's records must end in, by recordKey.
	Final map[string]map[string]any
}

// Plan is the whole workload.
type Plan struct {
	Users []*UserPlan
}

// Events counts the events of one round (or both when round < 0).
func (p *Plan) Events(round int) int {
	n := 0
	for _, u := range p.Users {
		for r := range u.Rounds {
			if round < 0 || round == r {
				n += len(u.Rounds[r])
			}
		}
	}
	return n
}

// Records is the number of records the plan's events touch, deleted ones
// included: what a pull from empty reads from a compacted changelog (each
// record's latest entry, a delete for a deleted one).
func (p *Plan) Records() int {
	n := 0
	for _, u := range p.Users {
		seen := map[string]bool{}
		for _, round := range u.Rounds {
			for _, e := range round {
				id, _ := e.Payload["id"].(string)
				seen[recordKey(e.EntityType, id)] = true
			}
		}
		n += len(seen)
	}
	return n
}

// Mix is the create/update/delete percentages of the second round.
type Mix struct{ Create, Update, Delete int }

// ParseMix reads "70/20/10".
func ParseMix(s string) (Mix, error) {
	var m Mix
	var rest string
	n, _ := fmt.Sscanf(s, "%d/%d/%d%s", &m.Create, &m.Update, &m.Delete, &rest)
	if n != 3 || m.Create < 0 || m.Update < 0 || m.Delete < 0 || m.Create+m.Update+m.Delete != 100 {
		return Mix{}, fmt.Errorf("--mix %q: want create/update/delete percentages adding up to 100, e.g. 70/20/10", s)
	}
	return m, nil
}

// PlanConfig sizes the workload.
type PlanConfig struct {
	RunID         string // makes ids unique per run
	Users         int
	BoardsPerUser int
	TodosPerBoard int
	Changes       int // second-round events per user
	Mix           Mix
	Seed          uint64
	Now           time.Time // zero: now
}

// NewPlan generates the workload deterministically from the config.
func NewPlan(c PlanConfig) *Plan {
	p := &Plan{}
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Millisecond)
	for i := 0; i < c.Users; i++ {
		p.Users = append(p.Users, newUserPlan(c, i, now))
	}
	return p
}

// userGen tracks a user's live records while its events are generated.
type userGen struct {
	u      *UserPlan
	rng    *rand.Rand
	seq    int
	now    time.Time
	boards []string            // live board ids
	todos  []string            // live todo ids
	byB    map[string][]string // board id -> its todo ids (live or not)
	next   int                 // id counter for records
}

func newUserPlan(c PlanConfig, i int, now time.Time) *UserPlan {
	uid := fmt.Sprintf("sb-%s-u%d", c.RunID, i)
	g := &userGen{
		u:   &UserPlan{ID: uid, Final: map[string]map[string]any{}},
		rng: rand.New(rand.NewPCG(c.Seed, uint64(i))),
		now: now,
		byB: map[string][]string{},
	}
	ts := now.Format(isoMillis)
	g.emit(0, "User", "create", map[string]any{
		"id": uid, "name": "User " + uid, "email": uid + "@syncbench.example",
		"emailVerified": false, "image": nil, "createdAt": ts, "updatedAt": ts, "isAnonymous": nil,
	})
	for b := 0; b < c.BoardsPerUser; b++ {
		bid := g.newBoard(0)
		for t := 0; t < c.TodosPerBoard; t++ {
			g.newTodo(0, bid)
		}
	}
	total := c.Mix.Create + c.Mix.Update + c.Mix.Delete
	for k := 0; k < c.Changes && total > 0; k++ {
		r := g.rng.IntN(total)
		switch {
		case r < c.Mix.Create:
			g.create()
		case r < c.Mix.Create+c.Mix.Update:
			g.update()
		default:
			g.delete()
		}
	}
	return g.u
}

func (g *userGen) emit(round int, model, op string, payload map[string]any) {
	g.seq++
	cp := make(map[string]any, len(payload))
	for k, v := range payload {
		cp[k] = v
	}
	g.u.Rounds[round] = append(g.u.Rounds[round], Event{
		ID: fmt.Sprintf("%s-e%d", g.u.ID, g.seq), EntityType: model, Operation: op, Payload: cp,
	})
	key := recordKey(model, payload["id"].(string))
	if op == "delete" {
		delete(g.u.Final, key)
	} else {
		g.u.Final[key] = cp
	}
}

func (g *userGen) ts() string {
	return g.now.Add(time.Duration(g.seq) * time.Millisecond).Format(isoMillis)
}

func (g *userGen) newBoard(round int) string {
	g.next++
	bid := fmt.Sprintf("%s-b%d", g.u.ID, g.next)
	g.boards = append(g.boards, bid)
	g.emit(round, "Board", "create", map[string]any{
		"id": bid, "name": fmt.Sprintf("Board %d", g.next), "createdAt": g.ts(), "userId": g.u.ID,
	})
	return bid
}

func (g *userGen) newTodo(round int, bid string) {
	g.next++
	tid := fmt.Sprintf("%s-t%d", g.u.ID, g.next)
	var desc any
	if g.next%2 == 0 {
		desc = fmt.Sprintf("description of todo %d", g.next)
	}
	g.todos = append(g.todos, tid)
	g.byB[bid] = append(g.byB[bid], tid)
	g.emit(round, "Todo", "create", map[string]any{
		"id": tid, "title": fmt.Sprintf("Todo %d", g.next), "description": desc,
		"isCompleted": false, "createdAt": g.ts(), "boardId": bid,
	})
}

func (g *userGen) create() {
	if len(g.boards) == 0 {
		g.newBoard(1)
		return
	}
	g.newTodo(1, g.boards[g.rng.IntN(len(g.boards))])
}

func (g *userGen) update() {
	n := 1 + len(g.boards) + len(g.todos)
	i := g.rng.IntN(n)
	var key, model string
	switch {
	case i == 0:
		model, key = "User", recordKey("User", g.u.ID)
	case i <= len(g.boards):
		model, key = "Board", recordKey("Board", g.boards[i-1])
	default:
		model, key = "Todo", recordKey("Todo", g.todos[i-1-len(g.boards)])
	}
	rec := g.u.Final[key]
	next := make(map[string]any, len(rec))
	for k, v := range rec {
		next[k] = v
	}
	switch model {
	case "User":
		next["name"] = fmt.Sprintf("User %s v%d", g.u.ID, g.seq)
		next["updatedAt"] = g.ts()
		next["isAnonymous"] = g.seq%2 == 0
	case "Board":
		next["name"] = fmt.Sprintf("Board renamed %d", g.seq)
	case "Todo":
		next["title"] = fmt.Sprintf("Todo edited %d", g.seq)
		next["isCompleted"] = !rec["isCompleted"].(bool)
		if rec["description"] == nil {
			next["description"] = fmt.Sprintf("added at %d", g.seq)
		} else {
			next["description"] = nil
		}
	}
	g.emit(1, model, "update", next)
}

func (g *userGen) delete() {
	n := len(g.boards) + len(g.todos)
	if n == 0 {
		g.update() // only the user is left, and deleting it would end the scope
		return
	}
	i := g.rng.IntN(n)
	if i < len(g.boards) {
		bid := g.boards[i]
		g.emit(1, "Board", "delete", g.u.Final[recordKey("Board", bid)])
		g.boards = remove(g.boards, bid)
		// onDelete: Cascade takes the board's todos with it.
		for _, tid := range g.byB[bid] {
			if _, live := g.u.Final[recordKey("Todo", tid)]; live {
				delete(g.u.Final, recordKey("Todo", tid))
				g.todos = remove(g.todos, tid)
			}
		}
		delete(g.byB, bid)
		return
	}
	tid := g.todos[i-len(g.boards)]
	g.emit(1, "Todo", "delete", g.u.Final[recordKey("Todo", tid)])
	g.todos = remove(g.todos, tid)
}

func remove(list []string, s string) []string {
	for i, x := range list {
		if x == s {
			list[i] = list[len(list)-1]
			return list[:len(list)-1]
		}
	}
	return list
}

// batches cuts events into batches of at most n.
func batches(events []Event, n int) [][]Event {
	var out [][]Event
	for len(events) > 0 {
		k := min(n, len(events))
		out = append(out, events[:k])
		events = events[k:]
	}
	return out
}
