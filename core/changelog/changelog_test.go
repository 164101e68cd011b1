package changelog

import (
	"testing"
	"time"
)

func TestNextIncreases(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		last string
		now  time.Time
	}{
		"last=empty":           {"", now},
		"clock=behind":         {"01ffffff-ffff-7fff-bfff-ffffffffffff", now},
		"carry=randb":          {"019abcde-f012-7345-bfff-ffffffffffff", now.Add(-time.Hour)},
		"carry=randa":          {"019abcde-f012-7fff-bfff-ffffffffffff", now.Add(-time.Hour)},
		"same-millisecond":     {"019abcde-f012-7000-8000-000000000000", time.UnixMilli(0x019abcdef012)},
		"clock=far-in-future":  {"019abcde-f012-7000-8000-000000000000", now.Add(24 * time.Hour)},
		"last=uppercase-valid": {"019ABCDE-F012-7000-8000-000000000000", now.Add(-24 * 365 * time.Hour)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Next(tc.last, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if tc.last != "" && !(got > tc.last) {
				t.Errorf("Next(%q) = %q, not greater", tc.last, got)
			}
			if !Valid(got) || got[14] != '7' || (got[19] != '8' && got[19] != '9' && got[19] != 'a' && got[19] != 'b') {
				t.Errorf("Next(%q) = %q, not a UUIDv7", tc.last, got)
			}
		})
	}
}

func TestNextMonotonicChain(t *testing.T) {
	t.Parallel()
	now := time.Now()
	last := ""
	for i := 0; i < 10000; i++ {
		id, err := Next(last, now) // frozen clock: every id after the first comes from successor
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("step %d: %q <= %q", i, id, last)
		}
		last = id
	}
}

func TestNextRejectsGarbageHead(t *testing.T) {
	t.Parallel()
	for _, last := range []string{"x", "0193", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"} {
		if _, err := Next(last, time.Now()); err == nil {
			t.Errorf("Next(%q): no error", last)
		}
	}
}
