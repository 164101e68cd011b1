//go:build linux

package pgstandby

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// startTimeout bounds Start and StartStandby.
	startTimeout = 2 * time.Minute
	// waitTimeout bounds WaitCaughtUp and the other waits on the servers.
	waitTimeout = time.Minute
	// slotName is the primary's physical replication slot the standby
	// streams from: the primary keeps the WAL the standby has not received,
	// however long it stays stopped.
	slotName = "pgstandby"
	// pollInterval is how often the waits ask the servers again.
	pollInterval = 10 * time.Millisecond
)

// ErrUnavailable is (wrapped in) Start's error when the PostgreSQL server
// binaries are not found, or when the process is root and there is no
// system user to run them as. ForTest and Shared skip the test on it.
var ErrUnavailable = errors.New("PostgreSQL server binaries unavailable")

// errClosed is the error of a Pair's methods after Close.
var errClosed = errors.New("pgstandby: pair is closed")

// Options configure Start. The zero value is what tests want.
type Options struct {
	// BinDir holds initdb, postgres and pg_basebackup. Empty: the directory
	// in SYNCPLANE_TEST_PG_BIN, else the highest-versioned
	// /usr/lib/postgresql/<version>/bin that has them.
	BinDir string
	// Parent is where the pair's temporary directory is made; empty:
	// os.TempDir(). As root it must be searchable by OSUser.
	Parent string
	// OSUser runs initdb, pg_basebackup and the servers when the process is
	// root (PostgreSQL refuses to run as root); empty: "postgres". Unused
	// when the process is not root: they then run as its user.
	OSUser string
	// Settings are extra postgresql.conf lines for both servers, after the
	// package's own (so they win), e.g. "max_standby_streaming_delay = -1".
	Settings []string
}

// Pair is a running primary and its hot standby. Its methods may be called
// from several goroutines.
type Pair struct {
	dir     string
	bins    bins
	run     runAs
	lock    *os.File // flock held while the pair lives (see sweepStale)
	primary *server
	standby *server

	mu     sync.Mutex // serializes stopping and starting the servers
	closed bool
}

// server is one of the pair's two clusters.
type server struct {
	name string // "primary" or "standby"
	data string // data directory
	log  string // the server's stderr
	port int
	proc *proc // nil when not started by us since the last stop
}

// Start makes and starts a primary and a hot standby streaming from it, and
// returns once the standby is in recovery and the primary reports it
// streaming. On error nothing is left running and the directory is gone.
func Start(ctx context.Context, opts Options) (*Pair, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	b, err := findBins(opts.BinDir)
	if err != nil {
		return nil, err
	}
	run, err := newRunAs(opts.OSUser)
	if err != nil {
		return nil, err
	}
	parent := opts.Parent
	if parent == "" {
		parent = os.TempDir()
	}
	// A Unix socket's path holds at most 107 bytes: sock/.s.PGSQL.<port>
	// in a pgstandby-<up to 10 digits> directory adds 41 to parent.
	if abs, err := filepath.Abs(parent); err == nil && len(abs)+41 > 107 {
		return nil, fmt.Errorf("parent directory %s: too long a path for the servers' Unix sockets", abs)
	}
	sweepStale(parent)
	dir, lock, err := makeDir(parent, run)
	if err != nil {
		return nil, err
	}
	// Not the test user's home: libpq would look for its ~/.pgpass there.
	run.env = append(run.env, "HOME="+dir)
	p := &Pair{
		dir:     dir,
		bins:    b,
		run:     run,
		lock:    lock,
		primary: &server{name: "primary", data: filepath.Join(dir, "primary"), log: filepath.Join(dir, "primary.log")},
		standby: &server{name: "standby", data: filepath.Join(dir, "standby"), log: filepath.Join(dir, "standby.log")},
	}
	if err := p.start(ctx, opts.Settings); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// start is Start once the directory exists.
func (p *Pair) start(ctx context.Context, settings []string) error {
	if err := p.run.mkdir(filepath.Join(p.dir, "sock")); err != nil {
		return err
	}
	if err := p.run.command(ctx, p.dir, filepath.Join(p.dir, "initdb.log"), p.bins.initdb,
		"-D", p.primary.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
		"--wal-segsize=1"); err != nil { // 1 MB WAL files, not 16: a smaller directory
		return fmt.Errorf("initdb: %w", err)
	}
	hba := strings.Join([]string{
		"# Written by syncplane's sdk/pgstandby: a throwaway test pair.",
		"local all         all                trust",
		"local replication all                trust",
		"host  all         all   127.0.0.1/32 trust",
		"host  replication all   127.0.0.1/32 trust",
		"",
	}, "\n")
	if err := p.run.writeFile(filepath.Join(p.primary.data, "pg_hba.conf"), hba); err != nil {
		return err
	}
	if err := appendFile(filepath.Join(p.primary.data, "postgresql.conf"), "\ninclude 'pgstandby.conf'\n"); err != nil {
		return err
	}
	if err := p.startServer(ctx, p.primary, settings, true); err != nil {
		return err
	}
	if err := p.run.command(ctx, p.dir, filepath.Join(p.dir, "basebackup.log"), p.bins.basebackup,
		"-D", p.standby.data, "-h", "127.0.0.1", "-p", fmt.Sprint(p.primary.port), "-U", "postgres",
		"-X", "stream", "-R", "-C", "-S", slotName, "--checkpoint=fast", "--no-sync"); err != nil {
		return fmt.Errorf("pg_basebackup: %w", err)
	}
	// The copy's pgstandby.conf is the primary's: startServer rewrites it.
	if err := p.startServer(ctx, p.standby, settings, true); err != nil {
		return err
	}
	return p.waitStreaming(ctx)
}

// PrimaryURL is the primary's URL: user postgres, database postgres.
func (p *Pair) PrimaryURL() string { return serverURL(p.primary.port) }

// StandbyURL is the standby's URL: user postgres, database postgres. It
// stays the same across StopStandby and StartStandby.
func (p *Pair) StandbyURL() string { return serverURL(p.standby.port) }

// Dir is the pair's directory: the data directories primary/ and standby/,
// their logs primary.log and standby.log, those of initdb and
// pg_basebackup, and the servers' Unix sockets in sock/.
func (p *Pair) Dir() string { return p.dir }

func serverURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// socketDSN is the connection string of s through its Unix socket.
func (p *Pair) socketDSN(s *server) string {
	sock := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(filepath.Join(p.dir, "sock"))
	return fmt.Sprintf("host='%s' port=%d user=postgres dbname=postgres sslmode=disable", sock, s.port)
}

// PauseReplay pauses the standby's replay of WAL: it goes on receiving
// WAL, but what the primary commits after PauseReplay returns stays
// invisible on the standby until ResumeReplay. It returns once the
// standby reports replay paused.
func (p *Pair) PauseReplay(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	return withConn(ctx, p.StandbyURL(), func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
			return fmt.Errorf("pause replay on the standby: %w", err)
		}
		// pg_wal_replay_pause only asks: the startup process pauses before
		// the next record it would replay, or while it waits for WAL.
		// Before PostgreSQL 14 there is no telling when it has.
		var version int
		if err := c.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
			return err
		}
		if version < 140000 {
			return nil
		}
		return poll(ctx, "the standby's replay to pause", func() (bool, error) {
			var state string
			err := c.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state)
			return state == "paused", err
		})
	})
}

// ResumeReplay resumes the standby's replay of WAL after PauseReplay.
func (p *Pair) ResumeReplay(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	return withConn(ctx, p.StandbyURL(), func(c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
			return fmt.Errorf("resume replay on the standby: %w", err)
		}
		return nil
	})
}

// WaitCaughtUp waits (at most a minute) until the standby has replayed all
// the WAL the primary had written when WaitCaughtUp was called
// (pg_last_wal_replay_lsn() >= pg_current_wal_lsn()): then whatever was
// committed on the primary before the call is visible on the standby.
func (p *Pair) WaitCaughtUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	var target string
	if err := withConn(ctx, p.PrimaryURL(), func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target)
	}); err != nil {
		return fmt.Errorf("primary's WAL position: %w", err)
	}
	return withConn(ctx, p.StandbyURL(), func(c *pgx.Conn) error {
		var replayed *string
		err := poll(ctx, "the standby to replay up to "+target, func() (bool, error) {
			var done bool
			err := c.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text, coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", target).Scan(&replayed, &done)
			return done, err
		})
		if err != nil && replayed != nil {
			return fmt.Errorf("%w (replayed up to %s)", err, *replayed)
		}
		return err
	})
}

// StopStandby stops the standby (a fast shutdown, like pg_ctl stop -m
// fast): connecting to StandbyURL fails until StartStandby. Stopping a
// stopped standby does nothing.
func (p *Pair) StopStandby(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	return p.standby.stop(ctx)
}

// StartStandby starts the standby again on its port after StopStandby (or
// after it died) and returns once it streams from the primary again; it
// does not wait for it to catch up (WaitCaughtUp does). Starting a running
// standby does nothing.
func (p *Pair) StartStandby(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	if p.standby.running() {
		return nil
	}
	if err := p.startServer(ctx, p.standby, nil, false); err != nil {
		return err
	}
	return p.waitStreaming(ctx)
}

// Close stops both servers (standby first) and removes the directory. It
// may be called more than once; later calls do nothing.
func (p *Pair) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	ctx := context.Background()
	errs := []error{p.standby.stop(ctx), p.primary.stop(ctx)}
	if err := os.RemoveAll(p.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", p.dir, err))
	}
	_ = p.lock.Close()
	return errors.Join(errs...)
}

// startServer writes s's pgstandby.conf and starts it. With newPort it picks
// a free port first, and picks another when the server could not bind it
// (another process took it in between); without, it keeps s.port (so that
// URLs handed out stay valid).
func (p *Pair) startServer(ctx context.Context, s *server, settings []string, newPort bool) error {
	for attempt := 1; ; attempt++ {
		if newPort {
			port, err := pickPort()
			if err != nil {
				return err
			}
			s.port = port
			if err := p.writeConf(s, settings); err != nil {
				return err
			}
		}
		err := p.startOnce(ctx, s)
		if err == nil || !newPort || attempt == 3 || !errors.Is(err, errBind) {
			return err
		}
	}
}

// errBind marks a start that failed because the port was taken.
var errBind = errors.New("port in use")

// startOnce starts s's postgres and waits until it accepts connections.
func (p *Pair) startOnce(ctx context.Context, s *server) error {
	logStart := fileSize(s.log)
	pr, err := p.run.spawn(p.dir, s.log, p.bins.postgres, "-D", s.data)
	if err != nil {
		return fmt.Errorf("start the %s: %w", s.name, err)
	}
	s.proc = pr
	err = poll(ctx, "the "+s.name+" to accept connections", func() (bool, error) {
		select {
		case <-pr.done:
			return false, fmt.Errorf("postgres exited: %v", pr.err)
		default:
		}
		// Through the Unix socket of the pair's directory, which only this
		// postgres can have made: the TCP port may have been taken by
		// another process since freePort (the postmaster listens on its
		// socket only once it has bound the port).
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := withConn(cctx, p.socketDSN(s), func(c *pgx.Conn) error { return c.Ping(cctx) })
		return err == nil, nil // no socket yet, or "the database system is starting up": ask again
	})
	if err == nil {
		return nil
	}
	_ = s.stop(context.Background())
	logged := readFrom(s.log, logStart)
	if strings.Contains(logged, "could not bind") || strings.Contains(logged, "could not create any TCP/IP sockets") {
		err = fmt.Errorf("%w: %w", errBind, err)
	}
	return fmt.Errorf("start the %s on port %d: %w\n%s", s.name, s.port, err, tailText(s.log, logged))
}

// waitStreaming waits until the standby is in recovery and streaming, and
// the primary shows its walsender streaming through the slot.
func (p *Pair) waitStreaming(ctx context.Context) error {
	err := withConn(ctx, p.StandbyURL(), func(c *pgx.Conn) error {
		var inRecovery bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
			return err
		}
		if !inRecovery {
			return errors.New("the standby is not in recovery")
		}
		return poll(ctx, "the standby's WAL receiver to stream", func() (bool, error) {
			var n int
			err := c.QueryRow(ctx, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").Scan(&n)
			return n == 1, err
		})
	})
	if err == nil {
		err = withConn(ctx, p.PrimaryURL(), func(c *pgx.Conn) error {
			return poll(ctx, "the primary to show the standby streaming", func() (bool, error) {
				var n int
				err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication r
					JOIN pg_replication_slots s ON s.active_pid = r.pid
					WHERE s.slot_name = $1 AND r.state = 'streaming'`, slotName).Scan(&n)
				return n == 1, err
			})
		})
	}
	if err != nil {
		return fmt.Errorf("replication: %w\n%s\n%s", err, tailText(p.standby.log, ""), tailText(p.primary.log, ""))
	}
	return nil
}

// writeConf writes s's pgstandby.conf, which its postgresql.conf includes.
func (p *Pair) writeConf(s *server, settings []string) error {
	sock := strings.ReplaceAll(filepath.Join(p.dir, "sock"), "'", "''")
	lines := []string{
		"# Written by syncplane's sdk/pgstandby: a throwaway test pair.",
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", s.port),
		"unix_socket_directories = '" + sock + "'",
		"cluster_name = 'pgstandby_" + s.name + "'",
		"wal_level = replica",
		"max_wal_senders = 10",
		"max_replication_slots = 10",
		"hot_standby = on",
		"hot_standby_feedback = on",
		"wal_receiver_status_interval = 1s",
		"fsync = off",
		"shared_buffers = 32MB",
		"logging_collector = off",
	}
	lines = append(lines, settings...)
	return p.run.writeFile(filepath.Join(s.data, "pgstandby.conf"), strings.Join(lines, "\n")+"\n")
}

// withConn runs f on a new connection to url.
func withConn(ctx context.Context, url string, f func(*pgx.Conn) error) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return f(c)
}

// poll calls f every pollInterval until it reports done or fails, or ctx
// ends; what names what is awaited, for the error.
func poll(ctx context.Context, what string, f func() (bool, error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		done, err := f()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// pickPort is freePort, but for a test of the retry.
var pickPort = freePort

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
