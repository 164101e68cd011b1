package scope_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/scope"
	"github.com/syncplane/syncplane/core/testkit"
)

// fakeLoader is a scope.Loader made of a func.
type fakeLoader struct {
	LoadFunc func(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error)
}

func (l *fakeLoader) Load(ctx context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error) {
	return l.LoadFunc(ctx, model, fields, keys)
}

// memLoader serves records from memory and counts the calls per model.
type memLoader struct {
	records map[string][]schema.Record
	calls   map[string]int
}

func newMemLoader() *memLoader {
	return &memLoader{records: map[string][]schema.Record{}, calls: map[string]int{}}
}

func (m *memLoader) add(model string, r schema.Record) {
	m.records[model] = append(m.records[model], r)
}

func (m *memLoader) total() int {
	n := 0
	for _, c := range m.calls {
		n += c
	}
	return n
}

func (m *memLoader) loader() *fakeLoader {
	return &fakeLoader{LoadFunc: func(_ context.Context, model string, fields []string, keys [][]any) ([]schema.Record, error) {
		m.calls[model]++
		want := map[string]bool{}
		for _, k := range keys {
			want[scope.KeyJSON(k)] = true
		}
		var out []schema.Record
		for _, r := range m.records[model] {
			vals := make([]any, len(fields))
			for i, f := range fields {
				vals[i] = r[f]
			}
			if want[scope.KeyJSON(vals)] {
				out = append(out, maps.Clone(r)) // the set tags what it gets
			}
		}
		return out, nil
	}}
}

// paths is a schema where Doc reaches User directly or through a Folder,
// Note only through a Folder, and Badge through User's unique email.
const paths = `
model User {
  id      String   @id
  email   String   @unique
  folders Folder[]
  docs    Doc[]
  badges  Badge[]
}

model Folder {
  id      String @id
  ownerId String
  owner   User   @relation(fields: [ownerId], references: [id])
  docs    Doc[]
  notes   Note[]
}

model Doc {
  id       String  @id
  folderId String?
  folder   Folder? @relation(fields: [folderId], references: [id])
  userId   String?
  user     User?   @relation(fields: [userId], references: [id])
}

model Note {
  id       String  @id
  folderId String?
  folder   Folder? @relation(fields: [folderId], references: [id])
}

model Badge {
  id         String @id
  ownerEmail String
  owner      User   @relation(fields: [ownerEmail], references: [email])
}
`

func parse(t testing.TB, src string) (*schema.Schema, *schema.Ownership) {
	t.Helper()
	sch, err := schema.Parse(schema.File{Name: "paths.prisma", Src: []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	own, err := schema.BuildOwnership(sch, "User", nil)
	if err != nil {
		t.Fatal(err)
	}
	return sch, own
}

// pathsStore: users u1, u2; folder f1 of u2, f2 of u1.
func pathsStore() *memLoader {
	l := newMemLoader()
	l.add("User", schema.Record{"id": "u1", "email": "u1@example.com"})
	l.add("User", schema.Record{"id": "u2", "email": "u2@example.com"})
	l.add("Folder", schema.Record{"id": "f1", "ownerId": "u2"})
	l.add("Folder", schema.Record{"id": "f2", "ownerId": "u1"})
	return l
}

func TestScopes(t *testing.T) {
	t.Parallel()
	sch, own := parse(t, paths)
	if got := len(own.Paths("Doc")); got != 2 {
		t.Fatalf("Doc has %d paths to User, want 2", got)
	}
	tests := map[string]struct {
		model   string
		rec     schema.Record
		want    []string
		wantErr error
	}{
		"model=Doc,paths=both":              {model: "Doc", rec: schema.Record{"id": "d", "userId": "u1", "folderId": "f1"}, want: []string{"u1", "u2"}},
		"model=Doc,paths=both same scope":   {model: "Doc", rec: schema.Record{"id": "d", "userId": "u1", "folderId": "f2"}, want: []string{"u1"}},
		"model=Doc,short=null":              {model: "Doc", rec: schema.Record{"id": "d", "userId": nil, "folderId": "f1"}, want: []string{"u2"}},
		"model=Doc,short=absent":            {model: "Doc", rec: schema.Record{"id": "d", "folderId": "f1"}, want: []string{"u2"}},
		"model=Doc,long=null":               {model: "Doc", rec: schema.Record{"id": "d", "userId": "u2", "folderId": nil}, want: []string{"u2"}},
		"model=Doc,short=missing":           {model: "Doc", rec: schema.Record{"id": "d", "userId": "u9", "folderId": "f2"}, want: []string{"u1"}},
		"model=Doc,long=missing":            {model: "Doc", rec: schema.Record{"id": "d", "userId": "u1", "folderId": "f9"}, want: []string{"u1"}},
		"model=Doc,both=null":               {model: "Doc", rec: schema.Record{"id": "d", "userId": nil, "folderId": nil}, wantErr: scope.ErrNoScope},
		"model=Doc,short=null,long=missing": {model: "Doc", rec: schema.Record{"id": "d", "userId": nil, "folderId": "f9"}, wantErr: scope.ErrMissingParent},
		"model=Doc,short=missing,long=null": {model: "Doc", rec: schema.Record{"id": "d", "userId": "u9", "folderId": nil}, wantErr: scope.ErrMissingParent},
		"model=Note,path=set":               {model: "Note", rec: schema.Record{"id": "n", "folderId": "f1"}, want: []string{"u2"}},
		"model=Note,path=null":              {model: "Note", rec: schema.Record{"id": "n", "folderId": nil}, wantErr: scope.ErrNoScope},
		"model=Note,path=missing":           {model: "Note", rec: schema.Record{"id": "n", "folderId": "f9"}, wantErr: scope.ErrMissingParent},
		"model=Folder":                      {model: "Folder", rec: schema.Record{"id": "f", "ownerId": "u1"}, want: []string{"u1"}},
		"model=Folder,owner=missing":        {model: "Folder", rec: schema.Record{"id": "f", "ownerId": "u9"}, wantErr: scope.ErrMissingParent},
		"model=Badge,by=unique field":       {model: "Badge", rec: schema.Record{"id": "b", "ownerEmail": "u2@example.com"}, want: []string{"u2"}},
		"model=Badge,owner=missing":         {model: "Badge", rec: schema.Record{"id": "b", "ownerEmail": "nobody@example.com"}, wantErr: scope.ErrMissingParent},
		"model=User (root)":                 {model: "User", rec: schema.Record{"id": "u7", "email": "u7@example.com"}, want: []string{"u7"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			set := scope.NewSet(sch, own, pathsStore().loader())
			got, err := set.Scopes(context.Background(), tc.model, tc.rec)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Scopes(%v) error = %v, want %v", tc.rec, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Scopes(%v) (-want +got):\n%s", tc.rec, diff)
			}
		})
	}
}

func TestScopesLoaderError(t *testing.T) {
	t.Parallel()
	sch, own := parse(t, paths)
	boom := errors.New("connection reset")
	set := scope.NewSet(sch, own, &fakeLoader{LoadFunc: func(context.Context, string, []string, [][]any) ([]schema.Record, error) {
		return nil, boom
	}})
	_, err := set.Scopes(context.Background(), "Doc", schema.Record{"id": "d", "userId": "u1", "folderId": nil})
	if !errors.Is(err, boom) || errors.Is(err, scope.ErrMissingParent) {
		t.Errorf("Scopes error = %v, want the loader's error (not a missing parent)", err)
	}
	if _, err := set.Load(context.Background(), []scope.Ref{{Model: "Doc", Fields: []string{"id"}, Keys: [][]any{{"d"}}}}); !errors.Is(err, boom) {
		t.Errorf("Load error = %v, want the loader's error", err)
	}
}

func TestRootKey(t *testing.T) {
	t.Parallel()
	_, own := parse(t, paths)
	for name, tc := range map[string]struct {
		rec     schema.Record
		want    string
		wantErr bool
	}{
		"type=string":  {rec: schema.Record{"id": "u1"}, want: "u1"},
		"type=int64":   {rec: schema.Record{"id": int64(-42)}, want: "-42"},
		"type=missing": {rec: schema.Record{}, wantErr: true},
		"type=float":   {rec: schema.Record{"id": 1.5}, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := scope.RootKey(own, tc.rec)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("RootKey(%v) = %q, %v; want %q (error %t)", tc.rec, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestKeyJSON(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CET", 3600)
	for name, tc := range map[string]struct {
		vals []any
		want string
	}{
		"values=string":         {vals: []any{"b1"}, want: `["b1"]`},
		"values=composite":      {vals: []any{"a", int64(7), true}, want: `["a",7,true]`},
		"values=time in a zone": {vals: []any{time.Date(2026, 11, 25, 11, 0, 0, 123456789, berlin)}, want: `["2026-11-25T10:00:00.123Z"]`},
		"values=none":           {vals: []any{}, want: `[]`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := scope.KeyJSON(tc.vals); got != tc.want {
				t.Errorf("KeyJSON(%v) = %s, want %s", tc.vals, got, tc.want)
			}
		})
	}
}

// kanbanStore: users u0..u2, boards b0..b9 (board i of user i%3) and
// todos t0..t99 (todo j on board j%10).
func kanbanStore(t testing.TB) (*schema.Schema, *schema.Ownership, *memLoader) {
	t.Helper()
	sch, own := testkit.Kanban(t)
	l := newMemLoader()
	for i := range 3 {
		l.add("User", schema.Record{"id": fmt.Sprintf("u%d", i), "email": fmt.Sprintf("u%d@example.com", i)})
	}
	for i := range 10 {
		l.add("Board", schema.Record{"id": fmt.Sprintf("b%d", i), "userId": fmt.Sprintf("u%d", i%3)})
	}
	for j := range 100 {
		l.add("Todo", schema.Record{"id": fmt.Sprintf("t%d", j), "boardId": fmt.Sprintf("b%d", j%10)})
	}
	return sch, own, l
}

func todoScope(j int) string { return fmt.Sprintf("u%d", (j%10)%3) }

// TestLoadIsBulk: Load fetches records and their ancestors with one call
// per model and ownership level, never one per record, except the root of
// stored records, whose key their foreign key holds (the database's
// foreign keys guarantee it exists); Scopes and Get then need no further
// calls.
func TestLoadIsBulk(t *testing.T) {
	t.Parallel()
	sch, own, l := kanbanStore(t)
	set := scope.NewSet(sch, own, l.loader())
	ctx := context.Background()
	keys := make([][]any, 100)
	for j := range keys {
		keys[j] = []any{fmt.Sprintf("t%d", j)}
	}
	loaded, err := set.Load(ctx, []scope.Ref{{Model: "Todo", Fields: []string{"id"}, Keys: keys}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(loaded), 100+10; got != want {
		t.Errorf("Load returned %d records, want %d (todos and their boards)", got, want)
	}
	if diff := cmp.Diff(map[string]int{"Todo": 1, "Board": 1}, l.calls); diff != "" {
		t.Errorf("loader calls per model (-want +got):\n%s", diff)
	}
	for j := range 100 {
		rec, err := set.Get(ctx, "Todo", []any{fmt.Sprintf("t%d", j)})
		if err != nil || rec == nil {
			t.Fatalf("Get(t%d) = %v, %v", j, rec, err)
		}
		got, err := set.Scopes(ctx, "Todo", rec)
		if err != nil || !slices.Equal(got, []string{todoScope(j)}) {
			t.Fatalf("Scopes(t%d) = %v, %v; want [%s]", j, got, err, todoScope(j))
		}
	}
	if n := l.total(); n != 2 {
		t.Errorf("Get and Scopes of loaded records made %d more loader calls", n-2)
	}
	if got := scope.Clean(loaded[0]); len(got) != 2 {
		t.Errorf("Clean left %v, want only the stored fields", got)
	}
}

// TestLoadRemembersMisses: a key that Load did not find is not asked for
// again.
func TestLoadRemembersMisses(t *testing.T) {
	t.Parallel()
	sch, own, l := kanbanStore(t)
	set := scope.NewSet(sch, own, l.loader())
	ctx := context.Background()
	if _, err := set.Load(ctx, []scope.Ref{{Model: "Todo", Fields: []string{"id"}, Keys: [][]any{{"t1"}, {"nope"}}}}); err != nil {
		t.Fatal(err)
	}
	before := l.total()
	for range 3 {
		if r, err := set.Get(ctx, "Todo", []any{"nope"}); r != nil || err != nil {
			t.Fatalf("Get(nope) = %v, %v; want nil, nil", r, err)
		}
	}
	if l.total() != before {
		t.Errorf("Get of a known miss called the loader %d more times", l.total()-before)
	}
}

// TestLoadChunks: very many keys are fetched in chunks of 500.
func TestLoadChunks(t *testing.T) {
	t.Parallel()
	sch, own, l := kanbanStore(t)
	set := scope.NewSet(sch, own, l.loader())
	keys := make([][]any, 1001)
	for j := range keys {
		keys[j] = []any{fmt.Sprintf("t%d", j)}
	}
	if _, err := set.Load(context.Background(), []scope.Ref{{Model: "Todo", Fields: []string{"id"}, Keys: keys}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"Todo": 3, "Board": 1}, l.calls); diff != "" {
		t.Errorf("loader calls per model (-want +got):\n%s", diff)
	}
}

// TestPrefetchIsBulk: Prefetch of new records (a push batch's payloads)
// loads their ancestors with one call per level, and only once.
func TestPrefetchIsBulk(t *testing.T) {
	t.Parallel()
	sch, own, l := kanbanStore(t)
	set := scope.NewSet(sch, own, l.loader())
	ctx := context.Background()
	payloads := make([]schema.Record, 100)
	for j := range payloads {
		payloads[j] = schema.Record{"id": fmt.Sprintf("new%d", j), "boardId": fmt.Sprintf("b%d", j%10)}
	}
	if err := set.Prefetch(ctx, "Todo", payloads); err != nil {
		t.Fatal(err)
	}
	// The boards are stored: their users exist, and their keys are the boards' userId.
	if diff := cmp.Diff(map[string]int{"Board": 1}, l.calls); diff != "" {
		t.Errorf("loader calls per model (-want +got):\n%s", diff)
	}
	for j, p := range payloads {
		got, err := set.Scopes(ctx, "Todo", p)
		if err != nil || !slices.Equal(got, []string{todoScope(j)}) {
			t.Fatalf("Scopes(new%d) = %v, %v; want [%s]", j, got, err, todoScope(j))
		}
	}
	if err := set.Prefetch(ctx, "Todo", payloads); err != nil {
		t.Fatal(err)
	}
	if n := l.total(); n != 1 {
		t.Errorf("Scopes and a second Prefetch made %d more loader calls", n-1)
	}
	// Payloads naming parents that do not exist: one call, then known misses.
	missing := []schema.Record{{"id": "x1", "boardId": "gone1"}, {"id": "x2", "boardId": "gone2"}}
	if err := set.Prefetch(ctx, "Todo", missing); err != nil {
		t.Fatal(err)
	}
	for _, p := range missing {
		if _, err := set.Scopes(ctx, "Todo", p); !errors.Is(err, scope.ErrMissingParent) {
			t.Errorf("Scopes(%v) error = %v, want ErrMissingParent", p, err)
		}
	}
	if n := l.total(); n != 2 {
		t.Errorf("missing parents took %d loader calls, want 1", n-1)
	}
}

// TestOverlay: the batch's own writes (Put) shadow stored records.
func TestOverlay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("parent=deleted in the batch", func(t *testing.T) {
		t.Parallel()
		sch, own, l := kanbanStore(t)
		set := scope.NewSet(sch, own, l.loader())
		todo, err := set.Get(ctx, "Todo", []any{"t0"})
		if err != nil || todo == nil {
			t.Fatalf("Get(t0) = %v, %v", todo, err)
		}
		set.Put("Board", []any{"b0"}, nil)
		if r, err := set.Get(ctx, "Board", []any{"b0"}); r != nil || err != nil {
			t.Errorf("Get of a board deleted in the batch = %v, %v; want nil", r, err)
		}
		if _, err := set.Scopes(ctx, "Todo", todo); !errors.Is(err, scope.ErrMissingParent) {
			t.Errorf("Scopes of a todo whose board was deleted: error = %v, want ErrMissingParent", err)
		}
		// Created again later in the batch: found again.
		set.Put("Board", []any{"b0"}, schema.Record{"id": "b0", "userId": "u2"})
		if got, err := set.Scopes(ctx, "Todo", todo); err != nil || !slices.Equal(got, []string{"u2"}) {
			t.Errorf("Scopes after the board was created again = %v, %v; want [u2]", got, err)
		}
	})
	t.Run("parent=moved in the batch", func(t *testing.T) {
		t.Parallel()
		sch, own, l := kanbanStore(t)
		set := scope.NewSet(sch, own, l.loader())
		// Loaded first, so the stored board (of u0) is known to the set.
		if _, err := set.Load(ctx, []scope.Ref{{Model: "Todo", Fields: []string{"id"}, Keys: [][]any{{"t0"}}}}); err != nil {
			t.Fatal(err)
		}
		set.Put("Board", []any{"b0"}, schema.Record{"id": "b0", "userId": "u1"})
		got, err := set.Scopes(ctx, "Todo", schema.Record{"id": "t0", "boardId": "b0"})
		if err != nil || !slices.Equal(got, []string{"u1"}) {
			t.Errorf("Scopes = %v, %v; want [u1] (the batch's board, not the stored one)", got, err)
		}
	})
	t.Run("parent=created in the batch", func(t *testing.T) {
		t.Parallel()
		sch, own, l := kanbanStore(t)
		set := scope.NewSet(sch, own, l.loader())
		set.Put("User", []any{"u9"}, schema.Record{"id": "u9"})
		set.Put("Board", []any{"b99"}, schema.Record{"id": "b99", "userId": "u9"})
		got, err := set.Scopes(ctx, "Todo", schema.Record{"id": "t99", "boardId": "b99"})
		if err != nil || !slices.Equal(got, []string{"u9"}) {
			t.Errorf("Scopes = %v, %v; want [u9]", got, err)
		}
		if n := l.total(); n != 0 {
			t.Errorf("records of the batch took %d loader calls", n)
		}
	})
	t.Run("parent=by unique field", func(t *testing.T) {
		t.Parallel()
		sch, own := parse(t, paths)
		set := scope.NewSet(sch, own, pathsStore().loader())
		badge := func(email string) schema.Record { return schema.Record{"id": "b", "ownerEmail": email} }
		if got, err := set.Scopes(ctx, "Badge", badge("u1@example.com")); err != nil || !slices.Equal(got, []string{"u1"}) {
			t.Fatalf("Scopes before the batch = %v, %v; want [u1]", got, err)
		}
		// u1 changes its email, u2 is deleted.
		set.Put("User", []any{"u1"}, schema.Record{"id": "u1", "email": "new@example.com"})
		set.Put("User", []any{"u2"}, nil)
		for email, want := range map[string]error{
			"u1@example.com":  scope.ErrMissingParent, // the stored email is shadowed
			"u2@example.com":  scope.ErrMissingParent, // deleted
			"new@example.com": nil,
		} {
			got, err := set.Scopes(ctx, "Badge", badge(email))
			if !errors.Is(err, want) || (want == nil && !slices.Equal(got, []string{"u1"})) {
				t.Errorf("Scopes(ownerEmail=%s) = %v, %v; want error %v", email, got, err, want)
			}
		}
	})
}

// TestChildren: the records referencing a record through an ownership
// relation, stored and the batch's own, with the batch's writes shadowing
// the stored ones.
func TestChildren(t *testing.T) {
	t.Parallel()
	sch, own := parse(t, paths)
	mem := newMemLoader()
	mem.add("User", schema.Record{"id": "u1", "email": "u1@x"})
	mem.add("Folder", schema.Record{"id": "f1", "ownerId": "u1"})
	mem.add("Folder", schema.Record{"id": "f2", "ownerId": "u1"})
	mem.add("Doc", schema.Record{"id": "d1", "folderId": nil, "userId": "u1"})
	mem.add("Badge", schema.Record{"id": "b1", "ownerEmail": "u1@x"})
	set := scope.NewSet(sch, own, mem.loader())
	set.Put("Folder", []any{"f2"}, nil)                                                     // deleted by the batch
	set.Put("Doc", []any{"d2"}, schema.Record{"id": "d2", "folderId": nil, "userId": "u1"}) // created by the batch
	set.Put("Doc", []any{"d1"}, schema.Record{"id": "d1", "folderId": nil, "userId": "u9"}) // moved away by the batch
	got, err := set.Children(context.Background(), "User", schema.Record{"id": "u1", "email": "u1@x"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range got {
		names = append(names, n.Model+":"+n.Rec["id"].(string))
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"Badge:b1", "Doc:d2", "Folder:f1"}, names); diff != "" {
		t.Errorf("children of u1 (-want +got):\n%s", diff)
	}
}

// KeyJSON writes what json.Marshal writes for the key's values (times as
// UTC milliseconds).
func TestKeyJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	for _, vals := range [][]any{
		{}, {"a"}, {"<&>\"\\\n\u2028\xff"}, {int64(-42), "b"}, {at}, {1.5, true, nil}, {"w1", "u1"},
	} {
		ref := make([]any, len(vals))
		for i, v := range vals {
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format("2006-01-02T15:04:05.000Z")
			}
			ref[i] = v
		}
		want, _ := json.Marshal(ref)
		if got := scope.KeyJSON(vals); got != string(want) {
			t.Errorf("KeyJSON(%v) = %s, want %s", vals, got, want)
		}
	}
}

// TestStoredRootInBatch: a stored record's root is read off its foreign
// key, but the batch's own write of that root still counts: deleted in
// the batch, the record's parent is missing.
func TestStoredRootInBatch(t *testing.T) {
	t.Parallel()
	sch, own, l := kanbanStore(t)
	set := scope.NewSet(sch, own, l.loader())
	ctx := context.Background()
	board, err := set.Get(ctx, "Board", []any{"b1"})
	if err != nil || board == nil {
		t.Fatalf("Get(b1) = %v, %v", board, err)
	}
	if got, err := set.Scopes(ctx, "Board", board); err != nil || !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("Scopes(b1) = %v, %v; want [u1]", got, err)
	}
	if l.calls["User"] != 0 {
		t.Errorf("the stored board's user was loaded %d times", l.calls["User"])
	}
	set.Put("User", []any{"u1"}, nil)
	if _, err := set.Scopes(ctx, "Board", board); !errors.Is(err, scope.ErrMissingParent) {
		t.Errorf("Scopes(b1) after its user's delete in the batch: %v, want ErrMissingParent", err)
	}
	todo, err := set.Get(ctx, "Todo", []any{"t1"})
	if err != nil || todo == nil {
		t.Fatalf("Get(t1) = %v, %v", todo, err)
	}
	if _, err := set.Scopes(ctx, "Todo", todo); !errors.Is(err, scope.ErrMissingParent) {
		t.Errorf("Scopes(t1) after its board's user's delete in the batch: %v, want ErrMissingParent", err)
	}
}
