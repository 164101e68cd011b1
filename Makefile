# make bench:     the standard scenario (cmd/syncbench standard): syncbench starts syncplane on
#                 SQLite and on PostgreSQL at $SYNCPLANE_BENCH_DATABASE_URL (default
#                 postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), one table out.
# make bench-sse: the server's memory per idle event stream, 10,000 of them.
# make bench-poke: commit-to-poke latency across two servers on one PostgreSQL
#                 database (scratch database at $SYNCPLANE_BENCH_DATABASE_URL), 500 pushes.
# make bench-abuse: a hostile client's cost to the server (issue 9, findings 1-4: pull-page and
#                 error amplification, slow bodies, idle keep-alive connections), SQLite and
#                 PostgreSQL; a few minutes, stops a finding when the server passes 4 GiB RSS.
.PHONY: bench bench-sse bench-poke bench-abuse

bench:
	go run ./cmd/syncbench standard

bench-sse:
	go run ./cmd/syncbench sse-idle --conns 10000

bench-poke:
	go run ./cmd/syncbench poke-latency --pushes 500

bench-abuse:
	go run ./cmd/syncbench abuse
