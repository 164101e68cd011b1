# make bench:     the standard scenario (cmd/syncbench standard): syncbench starts syncplane on
#                 SQLite and on PostgreSQL at $SYNCPLANE_BENCH_DATABASE_URL (default
#                 postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), one table out.
# make bench-sse: the server's memory per idle event stream, 10,000 of them.
# make bench-poke: commit-to-poke latency across two servers on one PostgreSQL
#                 database (scratch database at $SYNCPLANE_BENCH_DATABASE_URL), 500 pushes.
# make bench-abuse: a hostile client's cost to the server (issue 9, findings 1-4: pull-page and
#                 error amplification, slow bodies, idle keep-alive connections), SQLite and
#                 PostgreSQL; a few minutes, stops a finding when the server passes 4 GiB RSS.
# make bench-bootstrap: a new device's first pull after R records were each written
#                 H times (1000x20, 10000x10), SQLite and PostgreSQL; BOOTSTRAP_FLAGS
#                 adds flags, e.g. BOOTSTRAP_FLAGS='--server before=/tmp/syncplane-6572e43 --server after'.
# make bench-bootstrap-compare: the same, before (BEFORE, default 6572e43, the last
#                 build that kept every changelog entry) and after (this tree) in one table.
# make before-bin: builds syncplane at git revision BEFORE into /tmp/syncplane-$(BEFORE)
#                 (git archive of that revision into a temporary directory).
# BENCH_FLAGS passes flags to make bench, e.g. the standard scenario against the
#                 before build with this tree's syncbench and ceiling:
#                 make before-bin bench BENCH_FLAGS='--server-bin /tmp/syncplane-6572e43 --history'
.PHONY: bench bench-sse bench-poke bench-abuse bench-bootstrap bench-bootstrap-compare before-bin

BEFORE ?= 6572e43
BEFORE_BIN = /tmp/syncplane-$(BEFORE)

bench:
	go run ./cmd/syncbench standard $(BENCH_FLAGS)

bench-bootstrap:
	go run ./cmd/syncbench bootstrap $(BOOTSTRAP_FLAGS)

bench-bootstrap-compare: before-bin
	go run ./cmd/syncbench bootstrap --server before=$(BEFORE_BIN) --server after $(BOOTSTRAP_FLAGS)

before-bin:
	src=$$(mktemp -d) && git archive $(BEFORE) | tar -x -C "$$src" && \
	(cd "$$src" && go build -o $(BEFORE_BIN) ./cmd/syncplane); rc=$$?; rm -rf "$$src"; exit $$rc

bench-sse:
	go run ./cmd/syncbench sse-idle --conns 10000

bench-poke:
	go run ./cmd/syncbench poke-latency --pushes 500

bench-abuse:
	go run ./cmd/syncbench abuse
