package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/storetest"
)

// TestBootstrap runs the bootstrap mode at a tiny size against the server
// built from this tree, on every database available: the new device's
// pull from an empty cursor holds exactly one entry per record (no
// deletes, so no tombstones), in several pages, and leaves it every
// record.
func TestBootstrap(t *testing.T) {
	bin := syncplaneBin(t)
	for _, db := range storetest.Databases(t) {
		t.Run("db="+db.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Batches of 7 put two updates of a todo in one push as
			// well as across pushes.
			bc := BootstrapConfig{Servers: []BootstrapServer{{Name: "after", Bin: bin}}, DBs: []string{db.Name},
				PostgresURL: db.AdminURL, Shapes: []BootstrapShape{{Records: 5, Writes: 3}}, Batch: 7, PullLimit: 2}
			rep, err := RunBootstrap(ctx, bc, &strings.Builder{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Runs) != 1 {
				t.Fatalf("%d runs, want 1", len(rep.Runs))
			}
			r := rep.Runs[0]
			const records = 5 + 2 // the todos, the board and the user
			if !rep.Verified || !r.Verified {
				t.Fatalf("not verified:\n%s", r.Verify.summary())
			}
			if r.Events != 2+5*3 || r.Entries != records || r.Tombstones != 0 || r.FinalRecords != records || r.History ||
				r.Pages != 5 || r.Bytes <= 0 || r.Database != db.Name || r.Server != "after" {
				t.Errorf("run %+v: want 17 events pushed, then %d entries (one per record, no tombstone) in 4 pages and an empty one, %d records",
					r, records, records)
			}
			var out strings.Builder
			printBootstrap(&out, rep)
			if !strings.Contains(out.String(), "entries/record") || !strings.Contains(out.String(), "5×3") {
				t.Errorf("printed:\n%s", out.String())
			}
		})
	}
}

func TestBootstrapFlags(t *testing.T) {
	shapes, err := parseShapes("1000x20, 10000x10")
	if err != nil || len(shapes) != 2 || shapes[0] != (BootstrapShape{1000, 20}) || shapes[1] != (BootstrapShape{10000, 10}) {
		t.Errorf("parseShapes: %v, %v", shapes, err)
	}
	for _, bad := range []string{"", "10", "0x5", "5x0", "ax3"} {
		if _, err := parseShapes(bad); err == nil {
			t.Errorf("parseShapes(%q) accepted", bad)
		}
	}
	var l serverList
	for _, v := range []string{"before=/tmp/syncplane-old", "after"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if len(l) != 2 || l[0] != (BootstrapServer{"before", "/tmp/syncplane-old"}) || l[1] != (BootstrapServer{"after", ""}) {
		t.Errorf("servers %+v", l)
	}
	for _, bad := range []string{"before=/x", "=/x", ""} {
		if err := l.Set(bad); err == nil {
			t.Errorf("--server %q accepted", bad)
		}
	}
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"bootstrap", "--shapes", "3y4"}, &out, &errOut); code != 2 {
		t.Errorf("bad --shapes: exit %d, want 2 (%s)", code, errOut.String())
	}
}
