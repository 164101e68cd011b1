// Package pgstandby gives tests a real PostgreSQL streaming-replication
// pair: a primary and a hot standby of its own, in a temporary directory,
// on TCP ports of 127.0.0.1 chosen at run time. It is for tests of reads
// served by a replica (a pull answered by a standby that lags, pauses or
// dies); it never touches another server, such as the shared cluster on
// 5432 that storetest uses.
//
// Start makes the pair from Debian's server binaries (PostgreSQL 12 or
// later: /usr/lib/postgresql/<version>/bin, the highest version, or the
// directory in SYNCPLANE_TEST_PG_BIN): initdb for the primary,
// pg_basebackup -R -X stream through a replication slot for the standby,
// and waits until the standby is in recovery and the primary shows it
// streaming. Both servers trust every local and 127.0.0.1 connection, as
// user postgres, to database postgres; fsync is off. The servers run as
// children of the test process (postgres -D, not pg_ctl), and their logs
// are files of the pair's directory; when a start fails, the error carries
// their last lines.
//
// PostgreSQL refuses to run as root, so when the test process is root the
// servers, initdb and pg_basebackup run as the system user postgres (which
// Debian's postgresql package creates) and the pair's directory belongs to
// that user. Its parent directory (os.TempDir() by default) must then be
// searchable by that user.
//
// The servers are children of the test process and get SIGINT (a fast
// shutdown) when it dies, so a test binary killed by its timeout leaves no
// server running; the next Start in the same parent directory removes a
// directory left behind by a process that is gone.
//
// In tests, ForTest gives one test its own pair (about two seconds to
// start), and Shared gives all tests of a package one pair, which TestMain
// closes:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := pgstandby.CloseShared(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
//
// Both skip the test when the binaries (or, as root, the postgres user) are
// missing, and fail it instead when SYNCPLANE_TEST_REQUIRE_POSTGRES=1, as
// .ci/run sets.
//
// The package imports nothing of syncplane's. It runs on Linux only (it
// relies on the parent-death signal); elsewhere it holds only this
// documentation.
package pgstandby
