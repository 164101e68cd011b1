//go:build linux

package pgstandby

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runAs runs the PostgreSQL programs and makes their files: as the
// process's own user, or, when the process is root, as an unprivileged
// system user (cred non-nil), since initdb and postgres refuse root.
type runAs struct {
	cred *syscall.Credential // nil: the process's user
	env  []string
}

// newRunAs returns the runAs of this process: as root, it runs as osUser
// ("" for postgres). Its errors wrap ErrUnavailable.
func newRunAs(osUser string) (runAs, error) {
	r := runAs{env: childEnv()}
	if os.Geteuid() != 0 {
		return r, nil
	}
	if osUser == "" {
		osUser = "postgres"
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return runAs{}, fmt.Errorf("%w: running as root, and PostgreSQL must run as another user: %w", ErrUnavailable, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return runAs{}, fmt.Errorf("user %s: %w", osUser, err)
	}
	if uid == 0 {
		return runAs{}, fmt.Errorf("%w: user %s is root", ErrUnavailable, osUser)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	r.cred = cred
	return r, nil
}

// childEnv is the environment of the programs: the process's, without the
// PG* variables libpq and the servers read (PGHOST, PGPORT, PGDATA,
// PGOPTIONS...), the locale and HOME (Start sets it to the pair's
// directory), and with the C locale, so the pair is the same whatever the
// test's environment.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "LC_") || name == "LANG" || name == "LANGUAGE" || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// chown gives path to the user the programs run as.
func (r runAs) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	if err := os.Lchown(path, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// mkdir makes the directory path (0700) for the programs' user.
func (r runAs) mkdir(path string) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		return err
	}
	return r.chown(path)
}

// writeFile writes path (0600) for the programs' user.
func (r runAs) writeFile(path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return err
	}
	return r.chown(path)
}

// openLog opens path for appending, for the programs' user.
func (r runAs) openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := r.chown(path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// command runs the program name in dir with its output appended to the file
// logPath; its error carries the last lines of that file.
func (r runAs) command(ctx context.Context, dir, logPath, name string, args ...string) error {
	start := fileSize(logPath)
	logf, err := r.openLog(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w\n%s", err, tailText(logPath, readFrom(logPath, start)))
	}
	return nil
}

// proc is a server process started by spawn.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited; err is then set
	err  error
}

// spawn starts the program name in dir, as a child that gets SIGINT (the
// servers' fast shutdown) when this process dies, with its output appended
// to logPath.
func (r runAs) spawn(dir, logPath, name string, args ...string) (*proc, error) {
	logf, err := r.openLog(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: r.cred,
		Setpgid:    true, // a terminal's ^C is for the test binary; the servers follow it through Pdeathsig
		Pdeathsig:  syscall.SIGINT,
	}
	if err := startOnLockedThread(cmd); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// spawner is the goroutine that starts the servers, locked to its OS thread
// for good: the kernel sends a child its parent-death signal when the
// thread that forked it ends, not the process, and the Go runtime ends a
// thread when a goroutine locked to it returns. A thread that never ends
// makes the signal mean "the test process died".
var spawner struct {
	once sync.Once
	reqs chan func()
}

// startOnLockedThread starts cmd on the spawner's thread.
func startOnLockedThread(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // and never unlocked: see spawner
			for f := range spawner.reqs {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawner.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

// running reports whether s's postgres runs.
func (s *server) running() bool {
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// stop shuts s's postgres down: SIGINT (fast shutdown: clients are
// disconnected, the standby's WAL receiver too), then, after 30 s or when
// ctx ends, SIGQUIT (immediate shutdown) and SIGKILL. It waits until the
// process has exited; an exit caused by one of these signals is no error.
func (s *server) stop(ctx context.Context) error {
	pr := s.proc
	if pr == nil {
		return nil
	}
	s.proc = nil
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, 30 * time.Second}, {syscall.SIGQUIT, 5 * time.Second}, {syscall.SIGKILL, time.Minute}} {
		_ = pr.cmd.Process.Signal(step.sig)
		escalate := ctx.Done() // an ended ctx escalates at once...
		if step.sig == syscall.SIGKILL {
			escalate = nil // ...but SIGKILL's end is always awaited
		}
		t := time.NewTimer(step.wait)
		select {
		case <-pr.done:
			t.Stop()
			return nil
		case <-escalate:
		case <-t.C:
		}
		t.Stop()
	}
	return fmt.Errorf("the %s (pid %d) does not exit", s.name, pr.cmd.Process.Pid)
}
