# make bench:     the standard scenario (cmd/syncbench standard): syncbench starts syncplane on
#                 SQLite and on PostgreSQL at $SYNCPLANE_BENCH_DATABASE_URL (default
#                 postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), one table out.
# make bench-sse: the server's memory per idle event stream, 10,000 of them.
# make bench-poke: commit-to-poke latency across two servers on one PostgreSQL
#                 database (scratch database at $SYNCPLANE_BENCH_DATABASE_URL), 500 pushes.
.PHONY: bench bench-sse bench-poke

bench:
	go run ./cmd/syncbench standard

bench-sse:
	go run ./cmd/syncbench sse-idle --conns 10000

bench-poke:
	go run ./cmd/syncbench poke-latency --pushes 500
