package tenant

import (
	"context"
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
		reg.Put(fresh.Get(id))
	}
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
