package policy

// WithoutCache returns a copy of e that decides every request afresh, to
// measure the cost of a cold decision.
func WithoutCache(e *Enforcer) *Enforcer {
	c := *e
	c.cache = nil
	return &c
}

// WithoutCaches returns a copy of e that caches neither decisions nor the
// per-subject enforcers, to measure the cost of a first request.
func WithoutCaches(e *Enforcer) *Enforcer {
	c := *e
	c.cache = nil
	x := *e.idx
	x.narrow = nil
	c.idx = &x
	return &c
}
