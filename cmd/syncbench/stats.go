package main

import (
	"math"
	"sort"
	"sync"
	"time"
)

// latencies collects durations from concurrent workers.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// percentile is the nearest-rank percentile in milliseconds.
func (l *latencies) percentile(p float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return float64(s[rank-1].Microseconds()) / 1000
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// PushStats are the write figures of one run.
type PushStats struct {
	Events       int     `json:"events"`
	Batches      int     `json:"batches"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"eventsPerSec"`
	BatchP50Ms   float64 `json:"batchP50Ms"`
	BatchP99Ms   float64 `json:"batchP99Ms"`
	Retries      int     `json:"retries,omitempty"`
}

// PullStats are the read figures of one run.
type PullStats struct {
	Entries       int     `json:"entries"`
	Pages         int     `json:"pages"`
	Seconds       float64 `json:"seconds"`
	EntriesPerSec float64 `json:"entriesPerSec"`
	PageP50Ms     float64 `json:"pageP50Ms"`
	PageP99Ms     float64 `json:"pageP99Ms"`
}

func pushStats(events int, elapsed time.Duration, l *latencies, retries int) PushStats {
	return PushStats{
		Events: events, Batches: l.count(), Seconds: elapsed.Seconds(),
		EventsPerSec: rate(events, elapsed), BatchP50Ms: l.percentile(50), BatchP99Ms: l.percentile(99),
		Retries: retries,
	}
}

func pullStats(entries int, elapsed time.Duration, l *latencies) PullStats {
	return PullStats{
		Entries: entries, Pages: l.count(), Seconds: elapsed.Seconds(),
		EntriesPerSec: rate(entries, elapsed), PageP50Ms: l.percentile(50), PageP99Ms: l.percentile(99),
	}
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// forEachClient runs fn for every user, with clients workers each owning
// the users i ≡ worker (mod clients) and handling them in order. It returns
// the first error.
func forEachClient(clients int, users []*UserPlan, fn func(u *UserPlan) error) error {
	clients = max(1, min(clients, len(users)))
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(users); i += clients {
				if err := fn(users[i]); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
