package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenSource returns a bearer token for a subject.
type TokenSource func(ctx context.Context, sub string) (string, error)

// SecretTokens signs HS256 tokens with secret (issuer and audience set when
// not empty), valid for ttl.
func SecretTokens(secret []byte, issuer, audience string, ttl time.Duration) TokenSource {
	return func(_ context.Context, sub string) (string, error) {
		now := time.Now()
		claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
		if issuer != "" {
			claims["iss"] = issuer
		}
		if audience != "" {
			claims["aud"] = audience
		}
		return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	}
}

// CommandTokens runs a shell command with {sub} replaced by the (quoted)
// subject and takes the last non-empty line of its output as the token.
func CommandTokens(command string) TokenSource {
	return func(ctx context.Context, sub string) (string, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(command, "{sub}", shellQuote(sub)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("--token-cmd for %s: %v: %s", sub, err, strings.TrimSpace(stderr.String()))
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		tok := strings.TrimSpace(lines[len(lines)-1])
		if tok == "" {
			return "", fmt.Errorf("--token-cmd for %s printed no token", sub)
		}
		return tok, nil
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tokensFor gets every user's token, clients at a time.
func tokensFor(ctx context.Context, src TokenSource, users []*UserPlan, clients int) (map[string]string, error) {
	var mu sync.Mutex
	out := map[string]string{}
	err := forEachClient(clients, users, func(u *UserPlan) error {
		tok, err := src(ctx, u.ID)
		if err != nil {
			return err
		}
		mu.Lock()
		out[u.ID] = tok
		mu.Unlock()
		return nil
	})
	return out, err
}

// client speaks push/pull to one server and tenant.
type client struct {
	http    *http.Client
	bases   []string // .../v1/tenants/{tenant} of each server
	next    atomic.Uint64
	retries int
	mu      sync.Mutex
}

// base is the server for the next request: the servers of a
// comma-separated URL take turns, as behind a round-robin load balancer.
func (c *client) base() string {
	if len(c.bases) == 1 {
		return c.bases[0]
	}
	return c.bases[c.next.Add(1)%uint64(len(c.bases))]
}

// tenantURLs are the tenant's API URLs on each server of baseURL (one URL
// or several, comma-separated).
func tenantURLs(baseURL, tenantID string) []string {
	var out []string
	for _, u := range strings.Split(baseURL, ",") {
		out = append(out, strings.TrimRight(strings.TrimSpace(u), "/")+"/v1/tenants/"+tenantID)
	}
	return out
}

func newClient(baseURL, tenantID string, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	return &client{
		http:  &http.Client{Transport: tr, Timeout: 60 * time.Second},
		bases: tenantURLs(baseURL, tenantID),
	}
}

// post sends body and decodes a 200 answer into out. 429 and 503 are
// retried after their Retry-After (push is idempotent by event id, pull
// reads only), a few times.
func (c *client) post(ctx context.Context, path, token string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.postRaw(ctx, path, token, b, out)
}

// postRaw is post with a body already encoded.
func (c *client) postRaw(ctx context.Context, path, token string, b []byte, out any) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base()+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 5 {
			c.mu.Lock()
			c.retries++
			c.mu.Unlock()
			wait := 100 * time.Millisecond
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))
		}
		if raw, ok := out.(*[]byte); ok { // the caller decodes it later
			*raw = data
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("POST %s: decoding %.200s: %w", path, data, err)
		}
		return nil
	}
}

// pushResult is one event's answer.
type pushResult struct {
	ID                 string  `json:"id"`
	AppliedChangelogID *string `json:"appliedChangelogId"`
	Error              *struct {
		Type      string `json:"type"`
		Message   string `json:"message"`
		Retryable bool   `json:"retryable"`
	} `json:"error"`
}

// push sends one batch and records every acknowledgment in acks; an event
// with an error (or without a changelog id) is a verification failure.
func (c *client) push(ctx context.Context, token string, batch []Event, acks Acks, v *Verification) error {
	body, err := pushBody(batch)
	if err != nil {
		return err
	}
	return c.pushEncoded(ctx, token, batch, body, acks, v)
}

// pushBody is the push request of batch.
func pushBody(batch []Event) ([]byte, error) {
	return json.Marshal(map[string]any{"events": batch})
}

// pushEncoded is push with the request already encoded (pushBody).
func (c *client) pushEncoded(ctx context.Context, token string, batch []Event, body []byte, acks Acks, v *Verification) error {
	var res []pushResult
	if err := c.postRaw(ctx, "/push", token, body, &res); err != nil {
		return err
	}
	if len(res) != len(batch) {
		return fmt.Errorf("push of %d events got %d results", len(batch), len(res))
	}
	for i, r := range res {
		ev := batch[i]
		switch {
		case r.ID != ev.ID:
			v.failf("push: result %d is for %q, want %q", i, r.ID, ev.ID)
		case r.Error != nil:
			v.failf("push: event %s (%s %s) failed: %s: %s", ev.ID, ev.Operation, ev.EntityType, r.Error.Type, r.Error.Message)
		case r.AppliedChangelogID == nil || *r.AppliedChangelogID == "":
			v.failf("push: event %s acknowledged without a changelog id", ev.ID)
		default:
			acks[ev.ID] = *r.AppliedChangelogID
		}
	}
	return nil
}

type pullPage struct {
	Cursor          *string `json:"cursor"`
	LogsWithRecords []Entry `json:"logsWithRecords"`
}

// pullAll follows the cursor until an empty page, timing each page. While
// the clock runs it reads of each page only the cursor and whether it is
// empty, and keeps the page; decodePages decodes them after the clock.
func (c *client) pullAll(ctx context.Context, token string, limit int, pages *latencies) ([][]byte, error) {
	var all [][]byte
	var cursor *string
	for {
		req := map[string]any{"limit": limit}
		if cursor != nil {
			req["lastChangelogId"] = *cursor
		}
		var page []byte
		start := time.Now()
		if err := c.post(ctx, "/pull", token, req, &page); err != nil {
			return nil, err
		}
		pages.add(time.Since(start))
		next, empty, err := scanPage(page)
		if err != nil {
			return nil, fmt.Errorf("pull: page %.200s: %w", page, err)
		}
		if empty {
			return all, nil
		}
		if next == nil {
			return nil, errors.New("pull: a non-empty page without a cursor")
		}
		all = append(all, page)
		cursor = next
	}
}

// scanPage reads a pull page's cursor and whether it has entries, without
// decoding the entries when the cursor comes first (as syncplane writes
// it); otherwise the entries are skipped.
func scanPage(page []byte) (cursor *string, empty bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(page))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false, fmt.Errorf("not a JSON object")
	}
	seenCursor, seenLogs := false, false
	for dec.More() && !(seenCursor && seenLogs) {
		t, err := dec.Token()
		if err != nil {
			return nil, false, err
		}
		switch t {
		case "cursor":
			if err := dec.Decode(&cursor); err != nil {
				return nil, false, err
			}
			seenCursor = true
		case "logsWithRecords":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return nil, false, fmt.Errorf("logsWithRecords is not an array")
			}
			empty, seenLogs = !dec.More(), true
			if !seenCursor { // skip the entries to reach the cursor
				for dec.More() {
					var skip json.RawMessage
					if err := dec.Decode(&skip); err != nil {
						return nil, false, err
					}
				}
				if _, err := dec.Token(); err != nil {
					return nil, false, err
				}
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, false, err
			}
		}
	}
	if !seenLogs {
		return nil, false, errors.New(`no "logsWithRecords"`)
	}
	return cursor, empty, nil
}

// decodePages decodes the entries of pages pullAll kept.
func decodePages(pages [][]byte) ([]Entry, error) {
	var all []Entry
	for _, p := range pages {
		var page pullPage
		if err := json.Unmarshal(p, &page); err != nil {
			return nil, fmt.Errorf("pull: decoding %.200s: %w", p, err)
		}
		all = append(all, page.LogsWithRecords...)
	}
	return all, nil
}
