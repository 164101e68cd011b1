package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/syncplane/syncplane/core/httpapi"
	"github.com/syncplane/syncplane/core/storetest"
	"github.com/syncplane/syncplane/core/tenant"
)

// TestRateLimitRecovers: a tenant over its rate gets 429 with a numeric
// Retry-After, and once that time has passed its requests succeed again.
func TestRateLimitRecovers(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeTenant(t, root, "beta", "limits:\n  requestsPerSecond: 20\n  burst: 1\n")
	st := storetest.DB{Name: "sqlite"}.Open(t)
	reg, errs := tenant.LoadDir(context.Background(), root, tenant.Options{Store: st, Log: quietLog()})
	for _, err := range errs {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(reg, quietLog(), httpapi.WithReady(st.Ready), httpapi.WithDBStats(st.DBStats)))
	t.Cleanup(srv.Close)
	url := srv.URL + "/v1/tenants/beta/pull"
	tok := token(t, "beta", "rl-u")

	// With a burst of 1 at 20/s, a request right after another is over the
	// rate (unless the first took 50 ms; then try again).
	var (
		code int
		body []byte
		hdr  http.Header
	)
	for range 50 {
		if code, body, hdr = post(t, url, tok, map[string]any{}); code == http.StatusTooManyRequests {
			break
		}
		if code != http.StatusOK {
			t.Fatalf("pull: status %d: %s", code, body)
		}
	}
	if code != http.StatusTooManyRequests {
		t.Fatalf("50 requests in a row at 20/s with burst 1: last status %d, want 429", code)
	}
	ra := hdr.Get("Retry-After")
	secs, err := strconv.Atoi(ra)
	if err != nil || secs < 1 {
		t.Fatalf("429 with Retry-After %q, want whole seconds ≥ 1; body %s", ra, body)
	}
	if secs > 1 {
		t.Errorf("Retry-After %d at 20 requests/s, want 1", secs)
	}

	// After Retry-After, the tenant is served again.
	time.Sleep(time.Duration(secs) * time.Second)
	if code, body, _ := post(t, url, tok, map[string]any{}); code != http.StatusOK {
		t.Fatalf("after Retry-After (%ds): status %d: %s", secs, code, body)
	}
	// And it keeps being served at its rate: one request per 50 ms passes.
	deadline := time.Now().Add(2 * time.Second)
	for ok := 0; ok < 5; {
		time.Sleep(60 * time.Millisecond)
		code, body, _ := post(t, url, tok, map[string]any{})
		switch {
		case code == http.StatusOK:
			ok++
		case code != http.StatusTooManyRequests:
			t.Fatalf("pull: status %d: %s", code, body)
		case time.Now().After(deadline):
			t.Fatalf("requests spaced above the rate still refused after 2s: %s", body)
		}
	}
}
