//go:build linux

package pgstandby

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockName is the file of a pair's directory that its process holds an
// exclusive flock on while the pair lives. The kernel drops the lock when
// the process dies, however it dies, and whatever PID namespace it ran in.
const lockName = "pgstandby.lock"

// tailLines is how many lines of a log an error carries.
const tailLines = 30

// makeDir makes the pair's directory in parent, owned by the programs'
// user, and returns it with the locked lock file.
func makeDir(parent string, run runAs) (string, *os.File, error) {
	dir, err := os.MkdirTemp(parent, "pgstandby-")
	if err != nil {
		return "", nil, fmt.Errorf("pair directory: %w", err)
	}
	lock, err := createLocked(dir)
	if err == nil {
		err = run.chown(dir)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("pair directory: %w", err)
	}
	return dir, lock, nil
}

// createLocked creates dir's lock file already locked: it is locked under
// another name and then renamed, so that sweepStale never finds it
// unlocked.
func createLocked(dir string) (*os.File, error) {
	tmp := filepath.Join(dir, lockName+".new")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, lockName)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sweepStale removes, best effort, the pair directories of parent whose
// process is gone (killed by a test timeout, say, before it could Close):
// those whose lock file it can lock. Their servers are gone too (see
// spawn). A directory without a lock file is being made, or not ours.
func sweepStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "pgstandby-*"))
	for _, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(dir)
		}
		f.Close()
	}
}

// appendFile appends text to the existing file path.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// fileSize is path's size, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns path's text from offset on ("" on error).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// tailText returns the last lines of text, under a line naming the log
// path; with text "", those of the whole file.
func tailText(path, text string) string {
	if text == "" {
		text = readFrom(path, max(0, fileSize(path)-16<<10))
	}
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return fmt.Sprintf("(%s is empty)", filepath.Base(path))
	}
	lines := strings.Split(text, "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s", filepath.Base(path), strings.Join(lines, "\n"))
}
