package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/tenant"
)

// DefaultHeartbeat is how often an idle event stream gets a comment line,
// so that proxies do not close it.
const DefaultHeartbeat = 15 * time.Second

// WithLive enables GET /v1/tenants/{tenant}/events, fed by hub, with a
// heartbeat comment every heartbeat (0: DefaultHeartbeat). Without it the
// endpoint answers 404. Pulls with waitMs wait through the tenants' own
// wiring (tenant.Options.Live), not through this option.
func WithLive(hub *live.Hub, heartbeat time.Duration) Option {
	return func(s *Server) {
		s.live = hub
		s.heartbeat = cmpOr(heartbeat, DefaultHeartbeat)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// StopStreams ends every event stream and every waiting pull (with its
// empty page), now and from now on: call it when the server shuts down
// (http.Server.RegisterOnShutdown), since Shutdown does not wait for
// them to end by themselves.
func (s *Server) StopStreams() { s.stop() }

// poke is the data of one "poke" event.
type poke struct {
	ScopeKey    string `json:"scopeKey"`
	ChangelogID string `json:"changelogId"`
}

// events streams a "poke" event whenever a scope the subject may pull gets
// a commit, as Server-Sent Events, until the client goes away or the
// server stops. Scopes the subject gains later (a policy pattern matching a
// new scope) are picked up at the next heartbeat.
func (s *Server) events(c *gin.Context) {
	if s.live == nil {
		s.writeError(c, errorf(http.StatusNotFound, "live updates are not enabled"))
		return
	}
	t := c.MustGet(tenantKey).(*tenant.Tenant)
	ctx := c.Request.Context()
	subject, rs := c.GetString(subjectKey), roles(c)
	scopes, err := t.Pull.PullableScopes(ctx, subject, rs)
	if err != nil {
		s.writeError(c, err)
		return
	}
	sub := s.live.Subscribe(t.Manifest.ID, scopes)
	defer sub.Close()
	conns := s.metrics.sseConns.WithLabelValues(t.Manifest.ID)
	conns.Inc()
	defer conns.Dec()
	sent, coalesced := s.metrics.ssePokes.WithLabelValues(t.Manifest.ID), s.metrics.sseCoalesced.WithLabelValues(t.Manifest.ID)
	var counted uint64 // of sub.Coalesced()
	countCoalesced := func() {
		n := sub.Coalesced()
		coalesced.Add(float64(n - counted))
		counted = n
	}
	defer countCoalesced()
	// The stream lasts: each write gets the write timeout of its own, so a
	// client that stops reading is cut off while one that reads stays as
	// long as it likes. (net/http lifts the read deadline itself once the
	// request is read.)
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	s.setWriteDeadline(c, s.writeTimeout)
	if _, err := fmt.Fprint(w, ": connected\n\n"); err != nil {
		return
	}
	w.Flush()
	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopped.Done():
			return
		case <-sub.Ready():
			pokes := sub.Take()
			countCoalesced()
			s.setWriteDeadline(c, s.writeTimeout)
			for _, p := range pokes {
				data, _ := json.Marshal(poke{ScopeKey: p.Scope, ChangelogID: p.ChangelogID})
				if _, err := fmt.Fprintf(w, "event: poke\ndata: %s\n\n", data); err != nil {
					return
				}
				sent.Inc()
			}
		case <-heartbeat.C:
			if scopes, err := t.Pull.PullableScopes(ctx, subject, rs); err == nil {
				sub.SetScopes(scopes)
			} else if ctx.Err() == nil {
				s.log.Warn("event stream: cannot refresh scopes", "request_id", c.GetString(requestIDKey), "err", err)
			}
			s.setWriteDeadline(c, s.writeTimeout)
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		}
		w.Flush()
	}
}
