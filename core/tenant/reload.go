package tenant

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Reload loads every tenant folder under root again and swaps the tenants
// that load into reg. A tenant whose files are now invalid keeps serving its
// last good version (its error is returned); a tenant whose folder is gone
// is removed. Requests in flight finish on the version they started with.
func Reload(ctx context.Context, reg *Registry, root string, opt Options) []error {
	opt.Previous = reg
	fresh, errs := LoadDir(ctx, root, opt)
	for _, id := range fresh.IDs() {
		t := fresh.Get(id)
		if err := clashWithRunning(t, reg, fresh); err != nil {
			errs = append(errs, err)
			if old := reg.Get(id); old == nil || old.validator != t.validator {
				_ = t.Close() // its own validator plugin, not the running version's
			}
			continue
		}
		reg.Put(t)
	}
	for id, u := range fresh.unavailable {
		reg.setUnavailable(id, u.dir, u.err)
	}
	reg.mu.Lock()
	reg.refused = fresh.Refused() // this load's refusals replace the last one's
	reg.mu.Unlock()
	for _, id := range reg.IDs() {
		t := reg.Get(id)
		if fresh.Get(id) != nil || t == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(t.Dir, ManifestFile)); os.IsNotExist(err) {
			reg.Remove(id)
		}
	}
	return errs
}

// clashWithRunning is LoadDir's shared-key rule against the tenants that
// keep running as they are (in reg, not in fresh): LoadDir checked t
// against their new versions, which may have been refused since.
func clashWithRunning(t *Tenant, reg, fresh *Registry) error {
	me := tokenKey{t.Manifest.ID, t.Verifier, t.Manifest.Auth.Audience}
	for _, id := range reg.IDs() {
		o := reg.Get(id)
		if o == nil || fresh.Get(id) != nil {
			continue
		}
		if err := me.clash(tokenKey{id, o.Verifier, o.Manifest.Auth.Audience}); err != nil {
			return fmt.Errorf("%s: %w", t.Folder.manifestPath(), err)
		}
	}
	return nil
}
