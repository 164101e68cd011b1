package tenant

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a Watcher waits after the last change of a
// burst before it reloads, when it is given a debounce of 0.
const DefaultDebounce = 250 * time.Millisecond

// Watcher reloads the tenants of a tenants directory when their files
// change: it watches the directory, every tenant folder in it and their
// subfolders (schema folders) with fsnotify, also folders created later,
// waits until a burst of changes has been quiet for the debounce period and
// then calls Reload. Saves that write a file in place, replace it by rename
// (most editors, `mv tmp policy.csv`) or swap a symlink (Kubernetes
// ConfigMaps) all count as changes.
//
// A reload loads every tenant folder again; a tenant whose files are now
// invalid (an empty or malformed policy file, a broken schema) is refused
// and keeps serving its last good version, and each refusal is logged at
// level error, message "tenant reload refused; the last good version keeps
// serving", attribute err with the file:line of the problem. Every reload
// ends with an info line "tenants reloaded" giving the number of tenants
// serving and refused. While the tenants directory itself is missing or
// unreadable (between two steps of a deploy that replaces it), nothing is
// reloaded and every tenant keeps serving; the directory is checked again
// every second.
//
// Folders whose name starts with a dot (.git, editors' and ConfigMaps'
// internals) are not watched, though a change of their entry in a watched
// folder is; editors' swap, backup and lock files (".x.swp", "x~", "4913",
// ".#x", "#x#") and attribute-only changes trigger nothing.
type Watcher struct {
	fw       *fsnotify.Watcher
	reg      *Registry
	root     string
	opt      Options
	log      *slog.Logger
	debounce time.Duration
}

// NewWatcher starts watching the tenants directory root, whose tenants are
// in reg, and returns once every folder is watched, so a change made after
// it returns is never missed. debounce is the quiet period before a reload;
// 0 (or less) means DefaultDebounce. opt is what Reload loads tenants with; its Log
// also receives the Watcher's lines. The error is non-nil when root cannot
// be watched; a subfolder that cannot be watched is logged instead.
//
// Reloads start only with Run. A server that wants no gap between its
// first load and the watch creates the Watcher on an empty Registry, fills
// it with Reload, then calls Run.
func NewWatcher(reg *Registry, root string, opt Options, debounce time.Duration) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch tenants directory: %w", err)
	}
	w := &Watcher{fw: fw, reg: reg, root: filepath.Clean(root), opt: opt, log: log, debounce: debounce}
	if err := fw.Add(w.root); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch tenants directory %s: %w", w.root, err)
	}
	w.watchTree(w.root, map[string]bool{w.root: true}, map[string]bool{})
	return w, nil
}

// Watch watches the tenants directory root and reloads reg when it
// changes, until ctx ends; it is NewWatcher followed by Run. It returns an
// error only when root cannot be watched, and nil once ctx ends.
func Watch(ctx context.Context, reg *Registry, root string, opt Options, debounce time.Duration) error {
	w, err := NewWatcher(reg, root, opt, debounce)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Run reloads the tenants as their files change until ctx ends or Close is
// called, then closes the Watcher and returns nil; no goroutine of the
// Watcher outlives it. A reload in progress when ctx ends is cancelled
// with ctx. Call Run once.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		burst    time.Time // first change of the burst waiting for a reload; zero if none
		rootDown bool      // the last reload found root unreadable (logged once)
	)
	schedule := func() {
		now := time.Now()
		if burst.IsZero() {
			burst = now
		}
		// A burst that never pauses (a file written continuously) still
		// reloads every 10 debounce periods.
		timer.Reset(min(w.debounce, burst.Add(10*w.debounce).Sub(now)))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fw.Events:
			if !ok {
				return nil // closed
			}
			if !relevant(ev) {
				continue
			}
			w.log.Debug("tenant file changed", "path", ev.Name, "op", ev.Op.String())
			if name := filepath.Clean(ev.Name); ev.Has(fsnotify.Create) && !hidden(name) {
				// Watch a new folder at once, so that its own files
				// prolong the burst (a tenant folder being copied in).
				if info, err := os.Lstat(name); err == nil && info.IsDir() {
					w.watchTree(name, nil, map[string]bool{})
				}
			}
			schedule()
		case err, ok := <-w.fw.Errors:
			if !ok {
				return nil // closed
			}
			// Most likely the event queue overflowed: changes may have
			// been missed, so reload anyway.
			w.log.Warn("tenant watcher error; reloading to be sure", "dir", w.root, "err", err)
			schedule()
		case <-timer.C:
			burst = time.Time{}
			err := w.reload(ctx)
			if err != nil {
				if !rootDown {
					w.log.Error("tenants directory is unreadable; every tenant keeps serving its last good version", "dir", w.root, "err", err)
				}
				timer.Reset(max(time.Second, w.debounce))
			}
			rootDown = err != nil
		}
	}
}

// Close stops the Watcher; a running Run returns. It is safe to call more
// than once and from any goroutine.
func (w *Watcher) Close() error { return w.fw.Close() }

// reload brings the watches up to date and reloads the tenants. When the
// tenants directory cannot be read it returns why and reloads nothing:
// Reload would take every tenant for removed.
func (w *Watcher) reload(ctx context.Context) error {
	if _, err := os.ReadDir(w.root); err != nil {
		return err
	}
	w.sync()
	errs := Reload(ctx, w.reg, w.root, w.opt)
	if ctx.Err() != nil {
		return nil // shutting down: the errors are only the cancellation
	}
	for _, err := range errs {
		w.log.Error("tenant reload refused; the last good version keeps serving", "err", err)
	}
	w.log.Info("tenants reloaded", "dir", w.root, "tenants", len(w.reg.IDs()), "refused", len(errs))
	return nil
}

// sync watches every folder under root that is not watched yet and drops
// the watches of folders that are gone or moved. It runs before each reload,
// so a folder whose watch was lost (moved away and back, created and filled
// before its Create event was handled) is watched before its files are read.
func (w *Watcher) sync() {
	have := map[string]bool{}
	for _, p := range w.fw.WatchList() {
		have[p] = true
	}
	found := map[string]bool{}
	w.watchTree(w.root, have, found)
	for p := range have {
		if !found[p] {
			_ = w.fw.Remove(p) // gone already, in most cases
		}
	}
}

// watchTree watches dir and the folders below it, except hidden ones and
// those in have, and records in found every folder it comes across. A
// symbolic link to a folder is watched (its target's entries) but not
// descended into; a dir that is a symbolic link is followed.
func (w *Watcher) watchTree(dir string, have, found map[string]bool) {
	w.watchDir(dir, have, found)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) { // else gone meanwhile
			w.log.Error("tenant folder is not watched", "dir", dir, "err", err)
		}
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case hidden(p):
		case e.IsDir():
			w.watchTree(p, have, found)
		case e.Type()&fs.ModeSymlink != 0:
			if info, err := os.Stat(p); err == nil && info.IsDir() {
				w.watchDir(p, have, found)
			}
		}
	}
}

// watchDir watches one folder unless it is in have, and records it in found.
func (w *Watcher) watchDir(dir string, have, found map[string]bool) {
	found[dir] = true
	if have[dir] {
		return
	}
	if err := w.fw.Add(dir); err != nil && !errors.Is(err, fsnotify.ErrClosed) && !errors.Is(err, fs.ErrNotExist) {
		w.log.Error("tenant folder is not watched", "dir", dir, "err", err)
	}
}

// hidden reports whether a path names a hidden file or folder.
func hidden(p string) bool { return strings.HasPrefix(filepath.Base(p), ".") }

// relevant reports whether an event can change a tenant: attribute changes
// and editors' scratch files (vim's swap and write-test files, backups,
// emacs's locks and autosaves) cannot, and ignoring them keeps an open
// editor from reloading the tenants every few seconds.
func relevant(ev fsnotify.Event) bool {
	if ev.Op&^fsnotify.Chmod == 0 {
		return false
	}
	name := filepath.Base(ev.Name)
	switch {
	case strings.HasSuffix(name, "~"), name == "4913",
		strings.HasPrefix(name, ".#"),
		len(name) > 2 && strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"),
		strings.HasPrefix(name, ".") && len(name) > 4 && name[len(name)-4:len(name)-1] == ".sw":
		return false
	}
	return true
}
