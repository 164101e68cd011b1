package store

// OneStatementPage reports whether ChangesWithRecords reads a page with
// one statement (tests check which path they exercise).
func (t *Tenant) OneStatementPage() bool { return t.page != nil }
