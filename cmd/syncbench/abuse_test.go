package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/storetest"
)

// TestAbuse plays findings 1–4 at a tiny scale against every database
// available and checks that each is reported: statuses present, figures
// read. It asserts no figure: they are what the mode measures.
func TestAbuse(t *testing.T) {
	cfg := DefaultAbuseConfig()
	cfg.Bin = syncplaneBin(t)
	cfg.DBs = nil
	for _, db := range storetest.Databases(t) {
		cfg.DBs = append(cfg.DBs, db.Name)
		if db.AdminURL != "" {
			cfg.PostgresURL = db.AdminURL
		}
	}
	cfg.Settle = 50 * time.Millisecond
	cfg.Page = PageAbuseConfig{Updates: 30, NameBytes: 20_000, Limit: 50, Pulls: 2}
	cfg.Error = ErrorAbuseConfig{BodyBytes: 4 << 10, Concurrent: 2}
	cfg.Slow = SlowAbuseConfig{Conns: 5, ContentLength: 1 << 20, Interval: 100 * time.Millisecond, Duration: 400 * time.Millisecond}
	cfg.Idle = IdleAbuseConfig{Conns: 5, AnswerTimeout: 5 * time.Second, Hold: 200 * time.Millisecond, PullTimeout: 10 * time.Second}
	cfg.ServerNofile = 512
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := RunAbuse(ctx, cfg, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stopped || len(rep.Runs) != len(cfg.DBs) {
		t.Fatalf("stopped %v, %d runs for %v", rep.Stopped, len(rep.Runs), cfg.DBs)
	}
	for _, run := range rep.Runs {
		t.Run("db="+run.Database, func(t *testing.T) {
			fs := run.findings()
			if len(fs) != 4 {
				t.Fatalf("%d findings reported, want 4", len(fs))
			}
			for _, f := range fs {
				s := f.s
				if s.PID <= 0 || s.RSSBeforeBytes <= 0 || s.RSSAfterBytes <= 0 || s.HWMBytes <= 0 || s.Samples == 0 ||
					s.StoppedAtMaxRSS != "" || s.Err != "" {
					t.Errorf("finding %d: server %+v", f.n, *s)
				}
			}
			if s := run.Idle.Nofile; s != 512 {
				t.Errorf("server open-files limit %d, want 512", s)
			}
			p := run.Page
			if len(p.Pushes) == 0 || len(p.Pulls) != 2 || len(p.PullEntries) != 2 || len(p.RSSAfterPullBytes) != 2 ||
				p.UploadBytes <= int64(p.NameBytes) || p.RSSAfterPushesBytes <= 0 {
				t.Errorf("finding 1: %+v", p)
			}
			for _, r := range append(p.Pushes, p.Pulls...) {
				if r.Status == 0 || r.Bytes <= 0 {
					t.Errorf("finding 1: request %+v", r)
				}
			}
			for _, n := range p.PullEntries {
				if n <= 0 {
					t.Errorf("finding 1: pull entries %v", p.PullEntries)
				}
			}
			e := run.Error
			if e.One.Status == 0 || e.One.Bytes <= 0 || len(e.Many) != 2 || e.RSSAfterOneBytes <= 0 || e.RSSAfterManyBytes <= 0 ||
				e.Elements <= 0 || e.BodyBytes < 4<<10-3 || e.BodyBytes > 4<<10+3 {
				t.Errorf("finding 2: %+v", e)
			}
			for _, r := range e.Many {
				if r.Status == 0 || r.Bytes <= 0 {
					t.Errorf("finding 2: request %+v", r)
				}
			}
			s := run.Slow
			if s.Opened+s.DialErrors != 5 || s.Opened == 0 || s.FDsBefore <= 0 || s.FDsHeld <= 0 || s.FDsReleased <= 0 ||
				s.RSSHeld <= 0 || s.DurationSeconds <= 0 || s.EndedStatuses == nil {
				t.Errorf("finding 3: %+v", s)
			}
			i := run.Idle
			if i.Answered+i.Unanswered+i.DialErrors != 5 || i.FDsBefore <= 0 || i.FDsOpen <= 0 || i.FDsEnd <= 0 || i.FDsReleased <= 0 {
				t.Errorf("finding 4: %+v", i)
			}
			for _, r := range []httpResult{i.PullMeanwhile, i.PullEnd, i.PullReleased} {
				if r.Status == 0 && r.Error == "" {
					t.Errorf("finding 4: a pull with neither status nor error: %+v", r)
				}
			}
			if i.PullReleased.Status != 200 {
				t.Errorf("finding 4: the pull after release: %+v", i.PullReleased)
			}
		})
	}

	var out strings.Builder
	printAbuse(&out, rep)
	text := out.String()
	for _, want := range append([]string{"1 pull pages", "2 error details", "3 slow bodies", "4 idle keep-alive",
		"pull 2: status", "a normal pull meanwhile", "server descriptors"}, cfg.DBs...) {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	var buf bytes.Buffer
	if code := finish(&buf, true, rep, printAbuse, true); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var back AbuseReport
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Runs) != len(rep.Runs) || back.Runs[0].Page == nil {
		t.Errorf("JSON report: %v\n%s", err, buf.String())
	}
	t.Log("\n" + text)
}

// TestAbuseFlags checks the flags that pick and scale the findings.
func TestAbuseFlags(t *testing.T) {
	var stderr strings.Builder
	if code := run(context.Background(), []string{"abuse", "--findings", "5"}, &strings.Builder{}, &stderr); code != 2 {
		t.Errorf("--findings 5: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "findings 1–4") {
		t.Errorf("stderr: %s", stderr.String())
	}
	var b byteSize
	for in, want := range map[string]int64{"4GiB": 4 << 30, "878KiB": 878 << 10, "12": 12, "3 MiB": 3 << 20} {
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("byteSize %q = %d, %v; want %d", in, b, err, want)
		}
	}
	if err := b.Set("lots"); err == nil {
		t.Error(`byteSize "lots": no error`)
	}
}

func TestKeepWriterCounts(t *testing.T) {
	w := &keepWriter{keep: 4, count: []byte(`"changelogId":`)}
	page := strings.Repeat(`{"id":"a","changelogId":"1","record":{}},`, 7)
	for i := 0; i < len(page); i += 5 { // patterns split across writes
		_, _ = w.Write([]byte(page[i:min(i+5, len(page))]))
	}
	if w.n != 7 || string(w.buf) != `{"id` {
		t.Errorf("counted %d, kept %q; want 7, {\"id", w.n, w.buf)
	}
}

// TestAbuseStopsAtMaxRSS: a --max-rss below the idle server's RSS stops
// the finding (and kills the server) and says so.
func TestAbuseStopsAtMaxRSS(t *testing.T) {
	cfg := DefaultAbuseConfig()
	cfg.Bin, cfg.DBs, cfg.Findings, cfg.MaxRSS = syncplaneBin(t), []string{"sqlite"}, []int{2}, 1<<20
	cfg.Error = ErrorAbuseConfig{BodyBytes: 4 << 10, Concurrent: 2}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunAbuse(ctx, cfg, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	e := rep.Runs[0].Error
	if !rep.Stopped || e == nil || !strings.Contains(e.StoppedAtMaxRSS, "passed --max-rss") || !e.Killed {
		t.Fatalf("stopped %v, finding 2 %+v", rep.Stopped, e)
	}
	var out strings.Builder
	printAbuse(&out, rep)
	if !strings.Contains(out.String(), "* sqlite, finding 2 stopped: server RSS") {
		t.Errorf("printed:\n%s", out.String())
	}
}
