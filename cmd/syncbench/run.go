package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Config is one syncbench run.
type Config struct {
	URL           string
	Tenant        string
	Tokens        TokenSource
	Users         int
	BoardsPerUser int
	TodosPerBoard int
	Batch         int
	Clients       int
	Mix           Mix
	Changes       int // second-round events per user; < 0: half the first round
	PullLimit     int
	CeilingDSN    string
	// Reference also measures prisma-idb's reference server design on
	// CeilingDSN (RunReference).
	Reference bool
	// History verifies the pull as a changelog that keeps every entry
	// (a server built before the changelog was compacted, commit 7b77765):
	// every acknowledged entry pulled once, none left out as superseded.
	History bool
	RunID   string
	Seed    uint64
	Now     time.Time // the workload's timestamps start here; zero: now

	// cpu, when set (RunServed), samples the processor time of the server
	// and PostgreSQL around the push and the pull (Report.CPU).
	cpu func() cpuSample
	// Postmasters are PostgreSQL clusters (their postmasters' pids,
	// --postmaster) whose CPU is reported per phase (Report.Clusters).
	Postmasters []int
}

// Report is what a run measured and verified.
type Report struct {
	RunID     string           `json:"runId"`
	Users     int              `json:"users"`
	Events    int              `json:"events"`
	Creates   PushStats        `json:"createRound"`
	Changes   PushStats        `json:"changeRound"`
	Push      PushStats        `json:"push"`
	Pull      PullStats        `json:"pull"`
	Verified  bool             `json:"verified"`
	Verify    *Verification    `json:"verification"`
	Ceiling   *CeilingReport   `json:"ceiling,omitempty"`
	Reference *ReferenceReport `json:"reference,omitempty"`
	Ratio     *Ratio           `json:"ratio,omitempty"`
	// Server is the server syncbench started (--serve) and its memory.
	Server *ServerReport `json:"server,omitempty"`
	// CPU is the processor time spent per event and per entry, when
	// syncbench started the server.
	CPU *CPU `json:"cpu,omitempty"`
	// Clusters is what each --postmaster cluster spent.
	Clusters []ClusterCPU `json:"clusters,omitempty"`
}

// Ratio is syncplane's throughput divided by the ceiling's and the
// reference design's (below 1: slower, above 1: faster).
type Ratio struct {
	PushVsInsert float64 `json:"pushVsInsert,omitempty"`
	PushVsCopy   float64 `json:"pushVsCopy,omitempty"`
	PullVsDB     float64 `json:"pullVsDB,omitempty"`
	// PushVsReference is against the reference design with as many
	// clients; PushVsReferenceSequential against its single client.
	PushVsReference           float64 `json:"pushVsReference,omitempty"`
	PushVsReferenceSequential float64 `json:"pushVsReferenceSequential,omitempty"`
}

// ratios compares syncplane's figures with the ceiling and the reference
// (either may be nil).
func ratios(rep *Report, c *CeilingReport, r *ReferenceReport) *Ratio {
	if c == nil && r == nil {
		return nil
	}
	out := &Ratio{}
	if c != nil {
		out.PushVsInsert = ratio(rep.Push.EventsPerSec, c.Insert.Push.EventsPerSec)
		out.PushVsCopy = ratio(rep.Push.EventsPerSec, c.Copy.Push.EventsPerSec)
		out.PullVsDB = ratio(rep.Pull.EntriesPerSec, max(c.Insert.Pull.EntriesPerSec, c.Copy.Pull.EntriesPerSec))
	}
	if r != nil {
		out.PushVsReference = ratio(rep.Push.EventsPerSec, r.Concurrent.Push.EventsPerSec)
		out.PushVsReferenceSequential = ratio(rep.Push.EventsPerSec, r.Sequential.Push.EventsPerSec)
	}
	return out
}

func (c *Config) plan() *Plan {
	changes := c.Changes
	if changes < 0 {
		changes = c.BoardsPerUser * (1 + c.TodosPerBoard) / 2
	}
	return NewPlan(PlanConfig{
		RunID: c.RunID, Users: c.Users, BoardsPerUser: c.BoardsPerUser, TodosPerBoard: c.TodosPerBoard,
		Changes: changes, Mix: c.Mix, Seed: c.Seed, Now: c.Now,
	})
}

func (c *Config) check() error {
	switch {
	case c.Users < 1:
		return errors.New("--users must be at least 1")
	case c.BoardsPerUser < 0 || c.TodosPerBoard < 0:
		return errors.New("--boards-per-user and --todos-per-board must not be negative")
	case c.Batch < 1 || c.Clients < 1 || c.PullLimit < 1:
		return errors.New("--batch, --clients and the pull limit must be at least 1")
	}
	return nil
}

// Run pushes the workload to the server, pulls it back, verifies it and,
// with a ceiling DSN, measures the database's own limit (and with
// cfg.Reference the reference design) for the same rows. An error means
// the run could not complete; a failed verification is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.URL == "" || cfg.Tokens == nil {
		return nil, errors.New("--url and a token source (--secret or --token-cmd) are required, or --serve")
	}
	p := cfg.plan()
	rep, err := runSync(ctx, cfg, p)
	if err != nil {
		return nil, err
	}
	return rep, compare(ctx, cfg, p, rep)
}

// RunServed starts a server of its own (StartServer), runs the workload
// against it (as Run) while sampling its RSS, stops it, then measures the
// ceiling and reference when configured.
func RunServed(ctx context.Context, cfg Config, sc ServeConfig) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	srv, err := StartServer(ctx, sc)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	cfg.URL, cfg.Tokens = srv.URL, SecretTokens(srv.Secret, "", "", 24*time.Hour)
	p := cfg.plan()
	rss := sampleRSS(srv.PID, 100*time.Millisecond)
	cfg.cpu = cpuMeter(srv.PID, srv.DB == "postgres")
	rep, err := runSync(ctx, cfg, p)
	server := rss.finish(srv.DB)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w\nserver log (tail):\n%s", err, srv.Logs())
	}
	rep.Server = server
	srv.Stop()
	return rep, compare(ctx, cfg, p, rep)
}

// compare runs the ceiling and the reference configured and sets the
// report's ratios and verdict.
func compare(ctx context.Context, cfg Config, p *Plan, rep *Report) error {
	if cfg.CeilingDSN != "" {
		cr, err := RunCeiling(ctx, cfg.CeilingDSN, p, cfg.Batch, cfg.Clients, cfg.PullLimit)
		if err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
		rep.Ceiling = cr
		if cfg.Reference {
			rr, err := RunReference(ctx, cfg.CeilingDSN, p, cfg.Batch, cfg.Clients, cfg.PullLimit)
			if err != nil {
				return fmt.Errorf("reference: %w", err)
			}
			rep.Reference = rr
		}
	}
	rep.Ratio = ratios(rep, rep.Ceiling, rep.Reference)
	rep.Verified = rep.Verify.OK() && (rep.Ceiling == nil || rep.Ceiling.Verified) &&
		(rep.Reference == nil || rep.Reference.Verified)
	return nil
}

// runSync pushes the plan to cfg.URL, pulls it back and verifies it.
func runSync(ctx context.Context, cfg Config, p *Plan) (*Report, error) {
	rep := &Report{RunID: cfg.RunID, Users: len(p.Users), Events: p.Events(-1), Verify: &Verification{}}
	tokens, err := tokensFor(ctx, cfg.Tokens, p.Users, cfg.Clients)
	if err != nil {
		return nil, err
	}
	c := newClient(cfg.URL, cfg.Tenant, cfg.Clients)
	acks := map[string]Acks{}
	for _, u := range p.Users {
		acks[u.ID] = Acks{}
	}
	// Every request body is encoded before the clock starts and every pull
	// verified after it stops: on a machine shared with the server, the
	// load generator takes as little of its CPU as it can.
	bodies := map[*UserPlan][2][][]byte{}
	for _, u := range p.Users {
		var bs [2][][]byte
		for round := range 2 {
			for _, b := range batches(u.Rounds[round], cfg.Batch) {
				body, err := pushBody(b)
				if err != nil {
					return nil, err
				}
				bs[round] = append(bs[round], body)
			}
		}
		bodies[u] = bs
	}
	sample := cfg.cpu
	if sample == nil {
		sample = func() cpuSample { return cpuSample{} }
	}
	clusters := clusterMeter(cfg.Postmasters)
	all := &latencies{}
	clStart := clusters()
	cpuStart := sample()
	start := time.Now()
	for round := range 2 {
		l := &latencies{}
		rs := time.Now()
		err := forEachClient(cfg.Clients, p.Users, func(u *UserPlan) error {
			for i, b := range batches(u.Rounds[round], cfg.Batch) {
				bs := time.Now()
				if err := c.pushEncoded(ctx, tokens[u.ID], b, bodies[u][round][i], acks[u.ID], rep.Verify); err != nil {
					return fmt.Errorf("user %s: %w", u.ID, err)
				}
				d := time.Since(bs)
				l.add(d)
				all.add(d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		st := pushStats(p.Events(round), time.Since(rs), l, 0)
		if round == 0 {
			rep.Creates = st
		} else {
			rep.Changes = st
		}
	}
	rep.Push = pushStats(p.Events(-1), time.Since(start), all, c.retries)
	cpuMid := sample()
	clMid := clusters()

	pages := &latencies{}
	var mu sync.Mutex
	entries := 0
	raw := map[*UserPlan][][]byte{}
	start = time.Now()
	err = forEachClient(cfg.Clients, p.Users, func(u *UserPlan) error {
		got, err := c.pullAll(ctx, tokens[u.ID], cfg.PullLimit, pages)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.ID, err)
		}
		mu.Lock()
		raw[u] = got
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	cpuEnd := sample()
	clEnd := clusters()
	for _, u := range p.Users {
		got, err := decodePages(raw[u])
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u.ID, err)
		}
		entries += len(got)
		VerifyUser(rep.Verify, u, acks[u.ID], got, cfg.History)
	}
	rep.Pull = pullStats(entries, elapsed, pages)
	if cfg.cpu != nil {
		rep.CPU = cpuReport(cpuStart, cpuMid, cpuEnd, p.Events(-1), entries)
	}
	if len(cfg.Postmasters) > 0 {
		rep.Clusters = clusterReport(cfg.Postmasters, clStart, clMid, clEnd, p.Events(-1), entries)
	}
	rep.Verified = rep.Verify.OK()
	return rep, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
