package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PageAbuseReport is finding 1: one board updated Updates times, then once
// with a name of NameBytes, then pulled from the start with Limit, Pulls
// times.
type PageAbuseReport struct {
	AbuseServer
	Updates     int          `json:"updates"`
	NameBytes   int          `json:"nameBytes"`
	Limit       int          `json:"limit"`
	UploadBytes int64        `json:"uploadBytes"` // the push bodies
	Pushes      []httpResult `json:"pushes"`
	// Events answered with an error, and the first such error.
	EventErrors         int          `json:"eventErrors"`
	FirstEventError     string       `json:"firstEventError,omitempty"`
	RSSAfterPushesBytes int64        `json:"rssAfterPushesBytes"`
	Pulls               []httpResult `json:"pulls"`
	// Entries of each pull page (its "changelogId" keys), and the RSS
	// right after each pull's last byte.
	PullEntries       []int   `json:"pullEntries"`
	RSSAfterPullBytes []int64 `json:"rssAfterPullBytes"`
}

func abusePage(ctx context.Context, a *abuseTarget, c PageAbuseConfig, r *PageAbuseReport, progress io.Writer) error {
	r.Updates, r.NameBytes, r.Limit = c.Updates, c.NameBytes, c.Limit
	sub, tok, err := a.token(ctx, "page")
	if err != nil {
		return err
	}
	hc := abuseClient(10 * time.Minute)
	ts := time.Now().UTC().Format(isoMillis)
	board := func(name string) map[string]any {
		return map[string]any{"id": sub + "-board", "name": name, "createdAt": ts, "userId": sub}
	}
	events := []Event{
		{ID: sub + "-user", EntityType: "User", Operation: "create", Payload: map[string]any{
			"id": sub, "name": "User " + sub, "email": sub + "@syncbench.example",
			"emailVerified": false, "image": nil, "createdAt": ts, "updatedAt": ts, "isAnonymous": nil}},
		{ID: sub + "-board", EntityType: "Board", Operation: "create", Payload: board("Board")},
	}
	for i := range c.Updates {
		events = append(events, Event{ID: fmt.Sprintf("%s-u%d", sub, i+1), EntityType: "Board", Operation: "update",
			Payload: board(fmt.Sprintf("Board renamed %d", i+1))})
	}
	var batches [][]Event
	for len(events) > 0 { // the default maxBatch
		n := min(100, len(events))
		batches, events = append(batches, events[:n]), events[n:]
	}
	batches = append(batches, []Event{{ID: sub + "-big", EntityType: "Board", Operation: "update",
		Payload: board(strings.Repeat("x", c.NameBytes))}})
	a.guard.setPhase("the pushes")
	fmt.Fprintf(progress, "  %d pushes (%d small updates, one %d-byte name) …\n", len(batches), c.Updates, c.NameBytes)
	for _, batch := range batches {
		body, err := pushBody(batch)
		if err != nil {
			return err
		}
		r.UploadBytes += int64(len(body))
		res, kept := post(ctx, hc, a.pushURL(), tok, body, 4<<20)
		r.Pushes = append(r.Pushes, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var results []pushResult
		if res.Status != http.StatusOK || json.Unmarshal(kept, &results) != nil {
			r.EventErrors += len(batch)
			if r.FirstEventError == "" {
				r.FirstEventError = fmt.Sprintf("push answered %d: %.200s %s", res.Status, res.Prefix, res.Error)
			}
			continue
		}
		for _, pr := range results {
			if pr.Error != nil || pr.AppliedChangelogID == nil {
				r.EventErrors++
				if r.FirstEventError == "" && pr.Error != nil {
					r.FirstEventError = pr.Error.Type + ": " + pr.Error.Message
				}
			}
		}
	}
	r.RSSAfterPushesBytes = a.guard.sample()
	body := fmt.Appendf(nil, `{"limit":%d}`, c.Limit)
	for k := 1; k <= c.Pulls; k++ {
		a.guard.setPhase(fmt.Sprintf("pull %d", k))
		fmt.Fprintf(progress, "  pull %d (limit %d) …\n", k, c.Limit)
		res, _, entries := postCounting(ctx, hc, a.pullURL(), tok, body, 160, []byte(`"changelogId":`))
		r.Pulls = append(r.Pulls, res)
		r.PullEntries = append(r.PullEntries, entries)
		r.RSSAfterPullBytes = append(r.RSSAfterPullBytes, a.guard.sample())
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	a.guard.setPhase("the settle time")
	a.wait(ctx, a.settle)
	return nil
}

// ErrorAbuseReport is finding 2: a push body of BodyBytes,
// {"events":[{},{},…]} (Elements empty objects), once, then Concurrent
// at once.
type ErrorAbuseReport struct {
	AbuseServer
	BodyBytes        int          `json:"bodyBytes"`
	Elements         int          `json:"elements"`
	One              httpResult   `json:"one"`
	RSSAfterOneBytes int64        `json:"rssAfterOneBytes"`
	Concurrent       int          `json:"concurrent"`
	Many             []httpResult `json:"many"`
	// Right after the last of them answered (RSSAfterBytes: after Settle).
	RSSAfterManyBytes int64 `json:"rssAfterManyBytes"`
}

// emptyEventsBody is {"events":[{},{},…]} of about size bytes.
func emptyEventsBody(size int) ([]byte, int) {
	n := max(1, (size-len(`{"events":[]}`)+1)/3)
	b := make([]byte, 0, 3*n+16)
	b = append(b, `{"events":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "{}"...)
	}
	return append(b, "]}"...), n
}

func abuseErrors(ctx context.Context, a *abuseTarget, c ErrorAbuseConfig, r *ErrorAbuseReport, progress io.Writer) error {
	_, tok, err := a.token(ctx, "errors")
	if err != nil {
		return err
	}
	body, n := emptyEventsBody(c.BodyBytes)
	r.BodyBytes, r.Elements, r.Concurrent = len(body), n, c.Concurrent
	hc := abuseClient(10 * time.Minute)
	a.guard.setPhase("one push")
	fmt.Fprintf(progress, "  one push of %d bytes, %d empty events …\n", len(body), n)
	r.One, _ = post(ctx, hc, a.pushURL(), tok, body, 160)
	r.RSSAfterOneBytes = a.guard.sample()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	a.guard.setPhase(fmt.Sprintf("%d pushes at once", c.Concurrent))
	fmt.Fprintf(progress, "  %d at once …\n", c.Concurrent)
	r.Many = make([]httpResult, c.Concurrent)
	var wg sync.WaitGroup
	for i := range r.Many {
		wg.Go(func() { r.Many[i], _ = post(ctx, hc, a.pushURL(), tok, body, 160) })
	}
	wg.Wait()
	r.RSSAfterManyBytes = a.guard.sample()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	a.guard.setPhase("the settle time")
	a.wait(ctx, a.settle)
	return nil
}

// SlowAbuseReport is finding 3: Conns push requests declaring a body of
// ContentLength and sending one byte of it every Interval, for Duration
// once all are open.
type SlowAbuseReport struct {
	AbuseServer
	Conns           int     `json:"conns"`
	Opened          int     `json:"opened"`
	DialErrors      int     `json:"dialErrors"`
	FirstError      string  `json:"firstError,omitempty"`
	ContentLength   int64   `json:"contentLength"`
	IntervalSeconds float64 `json:"intervalSeconds"`
	DurationSeconds float64 `json:"durationSeconds"` // as run (less when stopped)
	// Requests the server ended within the duration: answered (status)
	// or closed without an answer (status 0).
	Ended           int            `json:"ended"`
	EndedStatuses   map[string]int `json:"endedStatuses"`
	FirstEndSeconds float64        `json:"firstEndSeconds"` // after all were open; -1: none
	// Body bytes sent on each connection still open at the end.
	BytesSent int `json:"bytesSent"`
	// Descriptors the server holds (/proc/<pid>/fd): before, with every
	// connection open at the end of the duration, after syncbench closed
	// them (and Settle).
	FDsBefore   int   `json:"fdsBefore"`
	FDsHeld     int   `json:"fdsHeld"`
	FDsReleased int   `json:"fdsReleased"`
	RSSHeld     int64 `json:"rssHeldBytes"` // at the end of the duration, every connection open
}

// heldConn is a connection syncbench holds open and watches: ended is
// closed when the server answered or closed it.
type heldConn struct {
	conn   net.Conn
	br     *bufio.Reader
	ours   atomic.Bool // syncbench is closing it
	ended  chan struct{}
	once   sync.Once
	status int // the answer's, once ended (0: closed without one)
	at     time.Time

	writeFailed bool // a write failed (the writing goroutine's alone)
}

func newHeldConn(c net.Conn) *heldConn {
	return &heldConn{conn: c, br: bufio.NewReaderSize(c, 1024), ended: make(chan struct{})}
}

// end records that the server ended the connection (unless syncbench
// closed it).
func (h *heldConn) end(status int) {
	if h.ours.Load() {
		return
	}
	h.once.Do(func() {
		h.status, h.at = status, time.Now()
		close(h.ended)
	})
}

func (h *heldConn) isEnded() bool {
	select {
	case <-h.ended:
		return true
	default:
		return false
	}
}

func (h *heldConn) close() {
	h.ours.Store(true)
	_ = h.conn.Close()
}

// watch reads what the server sends until it ends the connection.
func (h *heldConn) watch() {
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.end(0)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h.end(resp.StatusCode)
}

func abuseSlow(ctx context.Context, a *abuseTarget, c SlowAbuseConfig, r *SlowAbuseReport, progress io.Writer) error {
	_, tok, err := a.token(ctx, "slow")
	if err != nil {
		return err
	}
	r.Conns, r.ContentLength, r.IntervalSeconds = c.Conns, c.ContentLength, c.Interval.Seconds()
	r.FDsBefore = countFDs(a.srv.PID)
	host := strings.TrimPrefix(a.srv.URL, "http://")
	head := fmt.Appendf(nil, "POST /v1/tenants/demo/push HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{", host, tok, c.ContentLength)
	a.guard.setPhase("opening the slow connections")
	fmt.Fprintf(progress, "  opening %d connections, each declaring %d body bytes …\n", c.Conns, c.ContentLength)
	conns, dialErrs, firstErr := dialHeld(ctx, host, c.Conns, func(h *heldConn) error {
		_ = h.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := h.conn.Write(head)
		return err
	})
	defer func() {
		for _, h := range conns {
			h.close()
		}
	}()
	r.Opened, r.DialErrors, r.FirstError = len(conns), dialErrs, firstErr
	for _, h := range conns {
		go h.watch()
	}
	r.BytesSent = 1
	opened := time.Now()
	a.guard.setPhase(fmt.Sprintf("the slow bodies (%d connections)", len(conns)))
	fmt.Fprintf(progress, "  %d open; one byte each every %s for %s …\n", len(conns), c.Interval, c.Duration)
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	deadline := time.NewTimer(c.Duration)
	defer deadline.Stop()
	one := []byte{' '}
slow:
	for {
		select {
		case <-ctx.Done():
			break slow
		case <-deadline.C:
			break slow
		case <-tick.C:
			if int64(r.BytesSent) >= c.ContentLength-1 { // never complete a body
				continue
			}
			r.BytesSent++
			for _, h := range conns {
				if h.isEnded() || h.writeFailed {
					continue
				}
				_ = h.conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := h.conn.Write(one); err != nil && !isTimeout(err) {
					h.writeFailed = true // closed: its reader says how
				}
			}
		}
	}
	r.DurationSeconds = time.Since(opened).Seconds()
	r.FDsHeld = countFDs(a.srv.PID)
	r.RSSHeld = a.guard.sample()
	time.Sleep(100 * time.Millisecond) // an answer on its way when the duration ended
	r.EndedStatuses, r.FirstEndSeconds = map[string]int{}, -1
	for _, h := range conns {
		if !h.isEnded() {
			continue
		}
		r.Ended++
		r.EndedStatuses[statusName(h.status)]++
		if s := h.at.Sub(opened).Seconds(); r.FirstEndSeconds < 0 || s < r.FirstEndSeconds {
			r.FirstEndSeconds = max(0, s)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, h := range conns {
		h.close()
	}
	a.guard.setPhase("the settle time")
	a.wait(ctx, max(a.settle, time.Second))
	r.FDsReleased = countFDs(a.srv.PID)
	return nil
}

func statusName(st int) string {
	if st == 0 {
		return "closed without an answer"
	}
	return fmt.Sprint(st)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialHeld opens n connections to host, 100 at a time, and calls start on
// each; it returns those started.
func dialHeld(ctx context.Context, host string, n int, start func(*heldConn) error) ([]*heldConn, int, string) {
	var (
		mu       sync.Mutex
		conns    []*heldConn
		failed   int
		firstErr string
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 100)
	)
	d := net.Dialer{Timeout: 10 * time.Second}
	for range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := d.DialContext(ctx, "tcp", host)
			var h *heldConn
			if err == nil {
				h = newHeldConn(c)
				if err = start(h); err != nil {
					_ = c.Close()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			conns = append(conns, h)
		})
	}
	wg.Wait()
	return conns, failed, firstErr
}

// IdleAbuseReport is finding 4: Conns connections each send one
// GET /healthz without a token, read the answer and stay idle (HTTP/1.1
// keep-alive) for Hold; meanwhile, a normal pull on a connection of its
// own.
type IdleAbuseReport struct {
	AbuseServer
	Conns int `json:"conns"`
	// Connections answered within the answer timeout (their statuses),
	// open but unanswered (never accepted, e.g. the server is out of
	// descriptors), and not even connected.
	Answered       int            `json:"answered"`
	AnswerStatuses map[string]int `json:"answerStatuses"`
	Unanswered     int            `json:"unanswered"`
	DialErrors     int            `json:"dialErrors"`
	FirstError     string         `json:"firstError,omitempty"`
	HoldSeconds    float64        `json:"holdSeconds"` // as run
	// Of the answered connections, those the server closed during the hold.
	ClosedByServer int `json:"closedByServer"`
	// Descriptors the server holds: before, with every connection open,
	// at the end of the hold, after syncbench closed them (and Settle).
	FDsBefore   int `json:"fdsBefore"`
	FDsOpen     int `json:"fdsOpen"`
	FDsEnd      int `json:"fdsEnd"`
	FDsReleased int `json:"fdsReleased"`
	// A normal pull (its own connection, a valid token): as soon as every
	// connection is open, at the end of the hold, and after release.
	PullMeanwhile httpResult `json:"pullMeanwhile"`
	PullEnd       httpResult `json:"pullEnd"`
	PullReleased  httpResult `json:"pullReleased"`
}

func abuseIdle(ctx context.Context, a *abuseTarget, c IdleAbuseConfig, r *IdleAbuseReport, progress io.Writer) error {
	sub, tok, err := a.token(ctx, "idle")
	if err != nil {
		return err
	}
	r.Conns = c.Conns
	if err := pushPokeEvent(ctx, a.srv.URL, tok, sub); err != nil { // something to pull
		return fmt.Errorf("creating the puller's user: %w", err)
	}
	pull := func() httpResult {
		hc := abuseClient(c.PullTimeout)
		hc.Transport.(*http.Transport).DisableKeepAlives = true
		res, _ := post(ctx, hc, a.pullURL(), tok, []byte(`{"limit":50}`), 160)
		return res
	}
	r.FDsBefore = countFDs(a.srv.PID)
	host := strings.TrimPrefix(a.srv.URL, "http://")
	req := fmt.Appendf(nil, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	a.guard.setPhase("opening the idle connections")
	fmt.Fprintf(progress, "  opening %d idle keep-alive connections (GET /healthz, no token) …\n", c.Conns)
	type answer struct {
		h      *heldConn
		status int // 0: none within the timeout
	}
	answers := make(chan answer, c.Conns)
	conns, dialErrs, firstErr := dialHeld(ctx, host, c.Conns, func(h *heldConn) error {
		_ = h.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := h.conn.Write(req); err != nil {
			return err
		}
		go func() {
			_ = h.conn.SetReadDeadline(time.Now().Add(c.AnswerTimeout))
			resp, err := http.ReadResponse(h.br, nil)
			_ = h.conn.SetReadDeadline(time.Time{})
			if err != nil {
				answers <- answer{h, 0}
				if !isTimeout(err) {
					h.end(0)
					return
				}
				if resp, err = http.ReadResponse(h.br, nil); err != nil { // answered late, or never
					h.end(0)
					return
				}
			} else {
				answers <- answer{h, resp.StatusCode}
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			for { // idle until the server closes it
				if _, err := h.br.ReadByte(); err != nil {
					h.end(0)
					return
				}
			}
		}()
		return nil
	})
	defer func() {
		for _, h := range conns {
			h.close()
		}
	}()
	r.DialErrors, r.FirstError = dialErrs, firstErr
	r.AnswerStatuses = map[string]int{}
	answered := map[*heldConn]bool{}
	for range conns {
		select {
		case an := <-answers:
			if an.status == 0 {
				r.Unanswered++
				continue
			}
			r.Answered++
			answered[an.h] = true
			r.AnswerStatuses[fmt.Sprint(an.status)]++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	opened := time.Now()
	r.FDsOpen = countFDs(a.srv.PID)
	a.guard.sample()
	a.guard.setPhase("the idle connections")
	fmt.Fprintf(progress, "  %d answered, %d unanswered, %d not connected; server holds %d descriptors; a normal pull …\n",
		r.Answered, r.Unanswered, r.DialErrors, r.FDsOpen)
	r.PullMeanwhile = pull()
	a.wait(ctx, c.Hold-time.Since(opened))
	r.HoldSeconds = time.Since(opened).Seconds()
	r.FDsEnd = countFDs(a.srv.PID)
	r.PullEnd = pull()
	for h := range maps.Keys(answered) {
		if h.isEnded() {
			r.ClosedByServer++
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, h := range conns {
		h.close()
	}
	a.guard.setPhase("the settle time")
	a.wait(ctx, max(a.settle, time.Second))
	r.FDsReleased = countFDs(a.srv.PID)
	r.PullReleased = pull()
	return nil
}
