package tenant

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/live"
	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/core/pull"
	"github.com/syncplane/syncplane/core/push"
	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/store"
	"github.com/syncplane/syncplane/core/syncdata"
)

// ManifestFile is the name of a tenant's manifest inside its folder.
const ManifestFile = "tenant.yaml"

// The demo's schema files only: whatever a generator run writes next to
// them (its prisma-idb output folder) is not part of the tenant.
//
//go:embed demo/tenant.yaml demo/prisma/*.prisma demo/prisma/models/*.prisma
var demoFS embed.FS

// Tenant is a loaded, migrated tenant, ready to serve.
type Tenant struct {
	// Folder is the tenant folder it was loaded from; Manifest and Dir
	// are its Manifest and Dir. Folder.Schema() also tells where the root
	// model and exclude list came from.
	Folder   *Folder
	Manifest *Manifest
	Dir      string
	Schema   *schema.Schema
	Own      *schema.Ownership
	Verifier *auth.Verifier
	Policy   *policy.Enforcer
	Store    *store.Tenant
	Push     *push.Service
	Pull     *pull.Service
	Limiter  *rate.Limiter // nil: unlimited

	validator *pluginhost.Host // nil: the tenant has none
	reader    *readerRef       // what the validator reads through
}

// Close stops the tenant's validator plugin, if it has one.
func (t *Tenant) Close() error {
	if t.validator == nil {
		return nil
	}
	return t.validator.Close()
}

// Options are what loading needs besides the tenant's own files.
type Options struct {
	Store  *store.Store
	Log    *slog.Logger        // default: discard
	Getenv func(string) string // environment lookup for hs256SecretEnv; default os.Getenv
	// Secret, when set, replaces the manifest's key source with this HS256
	// secret (the demo tenant's generated key).
	Secret []byte
	// Live, when set, is the process's hub of commit pokes: pulls with
	// waitMs wait on it, and on SQLite push publishes its commits to it (on
	// PostgreSQL the store's listener does, for every process). Default nil:
	// no live updates.
	Live *live.Hub
	// Previous holds the tenants being replaced (Reload sets it): a tenant
	// whose validator configuration is unchanged keeps its running plugin.
	Previous *Registry
	// Maintain, when set, starts the background work a serving process
	// does for a tenant it loads: the online compaction of a tenant
	// upgraded from before the compacted changelog (store.Tenant.
	// ResumeCompaction), logged when it ends. Default false (commands that
	// load tenants and exit).
	Maintain bool
}

// Load loads the tenant in dir and migrates its storage.
func Load(ctx context.Context, dir string, opt Options) (*Tenant, error) {
	f, err := OpenFolder(dir, opt.Getenv)
	if err != nil {
		return nil, err
	}
	return LoadFolder(ctx, f, opt)
}

// LoadDemo loads the built-in demo tenant with the given HS256 secret.
func LoadDemo(ctx context.Context, secret []byte, opt Options) (*Tenant, error) {
	return LoadFolder(ctx, DemoFolder(secret, opt.Getenv), opt)
}

// LoadFolder loads a tenant from its folder: every part of it (schema,
// key material, policy, validator configuration), then migrates its
// storage. opt.Getenv and opt.Secret are not used: the Folder has them.
func LoadFolder(ctx context.Context, f *Folder, opt Options) (*Tenant, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	m := f.Manifest
	t := &Tenant{Folder: f, Manifest: m, Dir: f.Dir}
	fs, err := f.Schema()
	if err != nil {
		return nil, err
	}
	t.Schema, t.Own = fs.Schema, fs.Own
	if t.Verifier, err = f.Verifier(); err != nil {
		return nil, err
	}
	if t.Policy, err = f.Policy(); err != nil {
		return nil, err
	}
	dsn, err := f.DatabaseURL()
	if err != nil {
		return nil, err
	}
	if t.Store, err = opt.Store.TenantAt(ctx, m.ID, t.Schema, t.Own, dsn); err != nil {
		return nil, err
	}
	retention := time.Duration(m.IdempotencyRetention)
	if retention == 0 { // a manifest not made by ParseManifest
		retention = DefaultIdempotencyRetention
	}
	t.Store.SetLedgerRetention(retention)
	t.Store.SetTombstoneRetention(time.Duration(m.TombstoneRetention))
	log := opt.Log.With("tenant", m.ID)
	if opt.Maintain {
		t.Store.ResumeCompaction(func(r store.CompactReport, err error) {
			if err != nil {
				log.Warn("changelog compaction stopped; it resumes when the tenant is next loaded", "err", err)
				return
			}
			log.Info("changelog compacted", "entries_before", r.Before, "superseded_removed", r.Superseded,
				"tombstones_removed", r.Tombstones, "entries_after", r.After, "took", r.Took.String())
		})
	}
	var validator push.Validator // stays a nil interface without a plugin
	if m.Validator != nil {
		if t.validator, t.reader, err = validatorHost(f, opt, opt.Log); err != nil {
			return nil, err
		}
		t.reader.set(reader{sch: t.Schema, own: t.Own, st: t.Store})
		validator = t.validator
	}
	t.Push = push.New(t.Schema, t.Own, pushStore{t.Store}, t.Policy, validator, log).WithRootFromToken(m.RootFromToken).
		WithHistory(m.Changelog == ChangelogHistory)
	t.Pull = pull.New(t.Schema, t.Own, t.Store, t.Policy, pull.Limits{PageSize: m.Limits.PullPageSize, PageMax: m.Limits.PullPageMax, PageBytes: m.Limits.PullPageBytes})
	if opt.Live != nil {
		hub := opt.Live.Tenant(m.ID)
		t.Pull.WithWaiter(hub)
		if !opt.Store.Postgres() {
			t.Push.WithNotifier(hub)
		}
	}
	if r := m.Limits.RequestsPerSecond; r > 0 {
		t.Limiter = rate.NewLimiter(rate.Limit(r), m.Limits.Burst)
	}
	return t, nil
}

// validatorHost returns the plugin host of a tenant's validator: the
// running one of the tenant it replaces when the configuration is the same
// (a policy change does not restart the plugin), else a new one, which
// starts its process at the first push.
func validatorHost(f *Folder, opt Options, log *slog.Logger) (*pluginhost.Host, *readerRef, error) {
	m := f.Manifest
	if opt.Previous != nil {
		if old := opt.Previous.Get(m.ID); old != nil && old.validator != nil && old.Dir == f.Dir && *old.Manifest.Validator == *m.Validator {
			return old.validator, old.reader, nil
		}
	}
	cfg, err := f.ValidatorConfig()
	if err != nil {
		return nil, nil, err
	}
	ref := &readerRef{}
	return pluginhost.New(cfg, ref, log), ref, nil
}

// rel turns a manifest path ("schema.prisma", "./models/") into the form
// io/fs accepts ("models"). Paths stay relative to the tenant folder: one
// that leaves it ("../x", "/x") is refused by fs as an invalid argument.
func rel(p string) string { return path.Clean(filepath.ToSlash(p)) }

// pushStore adapts the store's concrete transaction to push.Store.
type pushStore struct{ t *store.Tenant }

func (p pushStore) Begin(ctx context.Context) (push.Tx, error) { return p.t.Begin(ctx) }
func (p pushStore) Reads() push.Reads                          { return p.t }

var (
	_ push.Tx        = (*store.Tx)(nil)
	_ push.Validator = (*pluginhost.Host)(nil)
)

// DemoKey returns the demo tenant's HS256 secret, kept in dataDir/demo.key
// and generated on first use. It is safe to call from several goroutines
// and processes at once: all get the same key.
func DemoKey(dataDir string) ([]byte, error) {
	keyPath := filepath.Join(dataDir, "demo.key")
	key, err := readDemoKey(keyPath)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	key = []byte(hex.EncodeToString(raw[:]))
	// The key is written to a temporary file that is then linked into
	// place: a concurrent reader sees no key or a complete one, never a
	// partly written file, and of concurrent writers the first link wins
	// and the others return its key.
	f, err := os.CreateTemp(dataDir, ".demo.key-*") // mode 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(key, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(f.Name(), keyPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readDemoKey(keyPath) // another goroutine or process was first
		}
		return nil, err
	}
	return key, nil
}

// readDemoKey reads a demo key file; the error wraps fs.ErrNotExist when
// there is none.
func readDemoKey(keyPath string) ([]byte, error) {
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	key := strings.TrimSpace(string(b))
	if len(key) < 32 {
		return nil, fmt.Errorf("%s: key is shorter than 32 bytes; delete the file to generate a new one", keyPath)
	}
	return []byte(key), nil
}

// DemoManifest is the built-in demo tenant's manifest.
func DemoManifest() *Manifest { return DemoFolder(nil, nil).Manifest }

// Dirs lists the tenant folders of a tenants directory: its subfolders
// that hold a manifest, sorted.
func Dirs(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(d, ManifestFile)); err == nil {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	return dirs, nil
}

// LoadDir loads every tenant folder under root. A tenant that fails to load
// is left out and its error returned in errs; it never stops the others.
// Two folders claiming the same id are both refused, even when one of them
// is broken in some other way, and neither touches that id's storage.
func LoadDir(ctx context.Context, root string, opt Options) (*Registry, []error) {
	reg := NewRegistry()
	dirs, err := Dirs(root)
	if err != nil {
		return reg, []error{fmt.Errorf("tenants directory: %w", err)}
	}
	ids := make([]string, len(dirs))
	byID := map[string][]string{}
	for i, d := range dirs {
		if ids[i] = claimedID(d); ids[i] != "" {
			byID[ids[i]] = append(byID[ids[i]], d)
		}
	}
	// Open every folder first: the shared-key rule decides on all of them
	// at once, before any touches its storage.
	folders := make([]*Folder, len(dirs))
	openErrs := make([]error, len(dirs))
	var sounds []*Folder
	for i, d := range dirs {
		if len(byID[ids[i]]) > 1 {
			continue
		}
		if folders[i], openErrs[i] = OpenFolder(d, opt.Getenv); openErrs[i] == nil && sound(folders[i]) {
			sounds = append(sounds, folders[i])
		}
	}
	keyErrs := sharedKeys(sounds, opt.Previous)
	var errs []error
	for i, d := range dirs {
		if claimants := byID[ids[i]]; len(claimants) > 1 {
			if claimants[0] == d {
				errs = append(errs, fmt.Errorf("tenant id %q is claimed by several folders: %s", ids[i], strings.Join(claimants, ", ")))
			}
			continue
		}
		f, err := folders[i], openErrs[i]
		if err == nil {
			err = keyErrs[f]
		}
		if err != nil {
			if ids[i] != "" {
				reg.setRefused(ids[i], err)
			}
			errs = append(errs, err)
			continue
		}
		t, err := LoadFolder(ctx, f, opt)
		if err != nil {
			if errors.Is(err, syncdata.ErrUnavailable) {
				reg.setUnavailable(f.Manifest.ID, d, err)
			} else {
				reg.setRefused(f.Manifest.ID, err)
			}
			errs = append(errs, err)
			continue
		}
		reg.Put(t)
	}
	return reg, errs
}

// sound reports whether a folder's schema, key and policy can be read:
// a folder that cannot is refused for that, not for its key.
func sound(f *Folder) bool {
	if _, err := f.Schema(); err != nil {
		return false
	}
	if _, err := f.Verifier(); err != nil {
		return false
	}
	_, err := f.Policy()
	return err == nil
}

// tokenKey is what tells a tenant's tokens apart: its keys and audience.
type tokenKey struct {
	id       string
	keys     *auth.Verifier
	audience string
}

// sharedKeys applies the shared-key rule to the folders (sound, in
// folder order) and returns the refused ones with why. Two tenants that
// verify tokens with a common key must both set distinct auth.audience
// values: otherwise a token minted for one is good for the other.
//
// The folders are taken one after the other against the tenants as they
// stand: at first the running ones (previous, on a reload), then each
// folder taken replaces its tenant's running version. A folder that
// clashes waits and is tried again after the others, as long as some
// folder is taken; what still clashes is refused. So a running tenant
// keeps its key and the folder that now claims it too is refused, while
// two tenants that both set audiences at once are both taken; on a
// first load the first folder with a key is taken and the later ones
// refused.
func sharedKeys(folders []*Folder, previous *Registry) map[*Folder]error {
	state := map[string]tokenKey{}
	if previous != nil {
		for _, id := range previous.IDs() {
			if t := previous.Get(id); t != nil {
				state[id] = tokenKey{id, t.Verifier, t.Manifest.Auth.Audience}
			}
		}
	}
	refused := map[*Folder]error{}
	pending := folders
	for progress := true; progress && len(pending) > 0; {
		progress = false
		var next []*Folder
		for _, f := range pending {
			v, _ := f.Verifier()
			me := tokenKey{f.Manifest.ID, v, f.Manifest.Auth.Audience}
			delete(refused, f)
			for _, o := range slices.Sorted(maps.Keys(state)) { // sorted: the same folders, the same error
				if err := me.clash(state[o]); err != nil {
					refused[f] = fmt.Errorf("%s: %w", f.manifestPath(), err)
					break
				}
			}
			if refused[f] != nil {
				next = append(next, f)
				continue
			}
			if old, ok := state[me.id]; !ok || !old.same(me) {
				progress = true
			}
			state[me.id] = me
		}
		pending = next
	}
	return refused
}

// same reports whether k and o tell tokens apart alike.
func (k tokenKey) same(o tokenKey) bool {
	return k.audience == o.audience && slices.Equal(k.keys.Keys(), o.keys.Keys())
}

// clash says why tenants k and o accept each other's tokens, if they do.
func (k tokenKey) clash(o tokenKey) error {
	if o.id == k.id || !shareAKey(k.keys, o.keys) {
		return nil
	}
	switch {
	case k.audience == "" || o.audience == "":
		return fmt.Errorf("tenant %s verifies tokens with a key of tenant %s: set auth.audience in both manifests, to distinct values, so that neither accepts the other's tokens",
			k.id, o.id)
	case k.audience == o.audience:
		return fmt.Errorf("tenant %s verifies tokens with a key of tenant %s and the same auth.audience %q: give each its own audience, so that neither accepts the other's tokens",
			k.id, o.id, k.audience)
	}
	return nil
}

func shareAKey(a, b *auth.Verifier) bool {
	if a == nil || b == nil {
		return false
	}
	for _, k := range a.Keys() {
		if slices.Contains(b.Keys(), k) {
			return true
		}
	}
	return false
}

// claimedID is the id a folder's manifest claims, read leniently so that a
// manifest with other problems still claims its id; "" when none can be read.
func claimedID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return ""
	}
	var head struct {
		ID string `yaml:"id"`
	}
	_ = yaml.Unmarshal(b, &head) // a type error elsewhere still fills ID
	return head.ID
}

// Registry holds the running tenants. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	tenants map[string]*Tenant
	// unavailable are the tenants that could not load because their
	// database did not answer (syncdata.ErrUnavailable), by id: their
	// requests are answered 503 until RetryUnavailable loads them.
	unavailable map[string]unavailable
	// refused are the last load errors of folders that claim an id
	// (invalid files): a running tenant keeps its last good version.
	refused map[string]error
}

// unavailable is a tenant waiting for its database.
type unavailable struct {
	dir string
	err error
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{tenants: map[string]*Tenant{}, unavailable: map[string]unavailable{}, refused: map[string]error{}}
}

func (r *Registry) setUnavailable(id, dir string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tenants[id] == nil {
		r.unavailable[id] = unavailable{dir, err}
	}
}

// setRefused records (err nil: clears) the last load error of tenant id.
func (r *Registry) setRefused(id string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.refused, id)
	} else {
		r.refused[id] = err
	}
}

// Refused lists the tenants whose folder failed to load at the last load
// or reload, with the error (a running tenant among them keeps serving its
// last good version).
func (r *Registry) Refused() map[string]error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return maps.Clone(r.refused)
}

// Unavailable returns why tenant id, which is not running, could not load
// because its database did not answer; nil otherwise.
func (r *Registry) Unavailable(id string) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.unavailable[id].err
}

// RetryUnavailable loads again the tenants whose database did not answer,
// and returns the errors of those that still fail.
func (r *Registry) RetryUnavailable(ctx context.Context, opt Options) []error {
	r.mu.RLock()
	waiting := maps.Clone(r.unavailable)
	r.mu.RUnlock()
	var errs []error
	for id, u := range waiting {
		err := r.reload(ctx, id, u.dir, opt)
		var moved *movedIDError
		switch {
		case err == nil, errors.As(err, &moved): // a folder claiming another id is a reload's business
		case errors.Is(err, syncdata.ErrUnavailable):
			errs = append(errs, err)
		default:
			r.mu.Lock()
			delete(r.unavailable, id)
			r.mu.Unlock()
			errs = append(errs, err)
		}
	}
	return errs
}

// ReloadTenant loads tenant id (running, or waiting for its database)
// again from its folder and swaps it in; on an error the running version
// keeps serving.
func (r *Registry) ReloadTenant(ctx context.Context, id string, opt Options) error {
	r.mu.RLock()
	dir := r.unavailable[id].dir
	if t := r.tenants[id]; t != nil {
		dir = t.Dir
	}
	r.mu.RUnlock()
	if dir == "" {
		return fmt.Errorf("unknown tenant %q", id)
	}
	return r.reload(ctx, id, dir, opt)
}

// reload loads tenant id from dir and puts it in r; a database that does
// not answer leaves it waiting (setUnavailable), unless it runs.
func (r *Registry) reload(ctx context.Context, id, dir string, opt Options) error {
	t, err := Load(ctx, dir, opt)
	if err != nil {
		if errors.Is(err, syncdata.ErrUnavailable) {
			r.setUnavailable(id, dir, err)
		}
		return err
	}
	if t.Manifest.ID != id {
		_ = t.Close()
		return &movedIDError{id: id, now: t.Manifest.ID}
	}
	r.Put(t)
	return nil
}

// movedIDError: a tenant's folder now claims another id.
type movedIDError struct{ id, now string }

func (e *movedIDError) Error() string {
	return fmt.Sprintf("the folder of tenant %q now claims id %q: reload the tenants directory (SIGHUP)", e.id, e.now)
}

// Get returns the tenant with id, or nil.
func (r *Registry) Get(id string) *Tenant {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tenants[id]
}

// Put adds or replaces a tenant.
func (r *Registry) Put(t *Tenant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	retire(r.tenants[t.Manifest.ID], t)
	r.tenants[t.Manifest.ID] = t
	delete(r.unavailable, t.Manifest.ID)
}

// Remove drops a tenant.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	retire(r.tenants[id], nil)
	delete(r.tenants, id)
	delete(r.unavailable, id)
}

// IDs lists the running tenants, sorted.
func (r *Registry) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.tenants))
	for id := range r.tenants {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Close stops every tenant's validator plugin (at shutdown).
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, t := range r.tenants {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// retireGrace is how long a replaced tenant's plugin keeps serving the
// requests that started on it.
const retireGrace = 30 * time.Second

// retire stops old's validator plugin unless next took it over; requests
// in flight on old get retireGrace to finish.
func retire(old, next *Tenant) {
	if old == nil || old.validator == nil || (next != nil && next.validator == old.validator) {
		return
	}
	time.AfterFunc(retireGrace, func() { _ = old.validator.Close() })
}

// ValidatorInfo asks the tenant's validator plugin for its name and
// version; ok is false when the tenant has no validator.
func (t *Tenant) ValidatorInfo(ctx context.Context) (name, version string, ok bool, err error) {
	if t.validator == nil {
		return "", "", false, nil
	}
	name, version, _, err = t.validator.Info(ctx)
	return name, version, true, err
}

// Unavailables lists the tenants waiting for their database, with why.
func (r *Registry) Unavailables() map[string]error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]error, len(r.unavailable))
	for id, u := range r.unavailable {
		out[id] = u.err
	}
	return out
}

// EraseScope erases scope's records (store.Tenant.EraseScope) and pokes
// the readers of the scopes it wrote deletes to.
func (t *Tenant) EraseScope(ctx context.Context, scope string) (store.EraseReport, error) {
	rep, err := t.Store.EraseScope(ctx, scope)
	if err == nil {
		t.Push.Notify(rep.NewHeads())
	}
	return rep, err
}
