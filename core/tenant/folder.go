package tenant

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncplane/syncplane/core/auth"
	"github.com/syncplane/syncplane/core/pluginhost"
	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/core/schema"
)

// Folder is a tenant folder read once: its manifest when it is opened, and
// each of the parts the manifest points at — the schema with the resolved
// root model and exclude list, the policy, the key material, the validator
// plugin's configuration — the first time it is asked for, with the same
// result (or error) every later time. Every error names the file (and,
// where there is one, the line) of the problem.
//
// Load reads every part; the commands that need only some of them
// (`syncplane token`, `policy`, `plugin verify`) read only those, so that,
// say, a tenant with a broken schema can still have its policy checked.
// A Folder is safe for concurrent use.
type Folder struct {
	// Dir is the folder as given to OpenFolder; "(built-in demo)" for the
	// demo. File paths in errors are Dir joined with their path in it.
	Dir      string
	Manifest *Manifest

	fsys   fs.FS
	getenv func(string) string
	secret []byte // replaces the manifest's key source (the demo's generated key)

	schemaOnce sync.Once
	schema     *FolderSchema
	schemaErr  error

	policyOnce sync.Once
	policy     *policy.Enforcer
	policyErr  error

	keyOnce sync.Once
	key     auth.Config // the key material only
	keyErr  error
}

// FolderSchema is a tenant's schema as the server uses it.
type FolderSchema struct {
	Schema *schema.Schema
	Own    *schema.Ownership
	// RootModel is the manifest's rootModel, else the prisma-idb
	// generator block's.
	RootModel string
	// Exclude is the manifest's exclude when it states one, else the
	// models the generator block leaves out (its exclude patterns, or the
	// models its include does not match). The Changelog model is never
	// synced whether or not it is listed.
	Exclude []string
}

// OpenFolder reads the manifest of the tenant folder dir. getenv looks up
// the environment variable of auth.hs256SecretEnv (default os.Getenv).
func OpenFolder(dir string, getenv func(string) string) (*Folder, error) {
	return openFolder(os.DirFS(dir), dir, getenv, nil)
}

// DemoFolder is the built-in demo tenant's folder. With a secret, tokens
// are signed and verified with it; without one, with $DEMO_JWT_SECRET as
// the manifest says.
func DemoFolder(secret []byte, getenv func(string) string) *Folder {
	sub, _ := fs.Sub(demoFS, "demo")
	f, err := openFolder(sub, demoDir, getenv, secret)
	if err != nil {
		panic("built-in demo manifest: " + err.Error()) // covered by a test
	}
	return f
}

// demoDir names the demo's folder in errors.
const demoDir = "(built-in demo)"

func openFolder(fsys fs.FS, dir string, getenv func(string) string, secret []byte) (*Folder, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	mpath := filepath.Join(dir, ManifestFile)
	src, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	m, err := ParseManifest(mpath, src)
	if err != nil {
		return nil, err
	}
	return &Folder{Dir: dir, Manifest: m, fsys: fsys, getenv: getenv, secret: secret}, nil
}

// manifestPath is the manifest's path as errors name it.
func (f *Folder) manifestPath() string { return f.Manifest.File() }

// DatabaseURL is the URL of the tenant's own database (manifest
// database: env:NAME), "" when it lives on the main database.
func (f *Folder) DatabaseURL() (string, error) {
	name, ok := strings.CutPrefix(f.Manifest.Database, "env:")
	if !ok {
		return "", nil
	}
	u := f.getenv(name)
	if u == "" {
		l, c, _ := f.Manifest.Pos("database")
		return "", &FileError{File: f.manifestPath(), Line: l, Column: c, Msg: fmt.Sprintf("database: environment variable %s is not set", name)}
	}
	return u, nil
}

// Schema reads the schema the manifest names (a file, or a folder read
// recursively), resolves the root model and the exclude list from the
// manifest and the schema's prisma-idb generator block, builds the
// ownership DAG and checks the manifest's rootFromToken against the root.
//
// The manifest overrides the generator block: its rootModel must then be
// the same as the block's, and its exclude must list at least every model
// the block leaves out (it may leave out more: models the client has but
// that this server must not sync). Anything else is a contradiction,
// reported with the manifest's line and the block's.
func (f *Folder) Schema() (*FolderSchema, error) {
	f.schemaOnce.Do(func() { f.schema, f.schemaErr = f.readSchema() })
	return f.schema, f.schemaErr
}

func (f *Folder) readSchema() (*FolderSchema, error) {
	m, mpath := f.Manifest, f.manifestPath()
	name := rel(m.Schema)
	if _, err := fs.Stat(f.fsys, name); err != nil {
		return nil, fmt.Errorf("%s: schema: %w", mpath, err)
	}
	files, err := schema.ReadFiles(f.fsys, name, f.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mpath, err)
	}
	s, err := schema.Parse(files...)
	if err != nil {
		return nil, err
	}
	fs := &FolderSchema{Schema: s}
	if fs.RootModel, err = resolveRoot(m, s.IDB); err != nil {
		return nil, err
	}
	if fs.Exclude, err = resolveExclude(m, s); err != nil {
		return nil, err
	}
	if fs.Own, err = schema.BuildOwnership(s, fs.RootModel, fs.Exclude); err != nil {
		return nil, err
	}
	if err := checkRootFromToken(m, fs.Own.Root); err != nil {
		return nil, err
	}
	return fs, nil
}

// resolveRoot is the root model: the manifest's or the generator's, the
// same when both state it.
func resolveRoot(m *Manifest, g *schema.IDBGenerator) (string, error) {
	var gen string
	if g != nil {
		gen = g.RootModel
	}
	switch {
	case m.RootModel != "" && gen != "" && m.RootModel != gen:
		return "", m.errorAt(fmt.Sprintf("rootModel %q contradicts rootModel %q of the schema's generator %s (%s); state it in one place, or the same in both",
			m.RootModel, gen, g.Name, g.RootModelPos), "rootModel")
	case m.RootModel != "":
		return m.RootModel, nil
	case gen != "":
		return gen, nil
	case g != nil:
		return "", m.errorAt(fmt.Sprintf(`no root model: state rootModel in the manifest or in the schema's generator %s (%s)`, g.Name, g.Pos))
	}
	return "", m.errorAt(fmt.Sprintf(`no root model: state rootModel in the manifest, or in the schema's prisma-idb generator block (provider = %q), which the schema does not have`, schema.IDBProvider))
}

// resolveExclude is the manifest's exclude, checked to leave out every
// model the generator leaves out, or else the generator's.
func resolveExclude(m *Manifest, s *schema.Schema) ([]string, error) {
	gen := s.IDB.Excluded(s)
	if _, _, stated := m.Pos("exclude"); !stated {
		return gen, nil
	}
	var missing []string
	for _, name := range gen {
		if !slices.Contains(m.Exclude, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		g := s.IDB
		pos := g.ExcludePos
		if g.Include != nil {
			pos = g.IncludePos
		}
		return nil, m.errorAt(fmt.Sprintf("exclude leaves out %s, which the schema's generator %s excludes (%s): the app's client has no such model to sync; add %s to the manifest's exclude, or drop the manifest's exclude to use the generator's",
			strings.Join(missing, ", "), g.Name, pos, plural(len(missing), "it", "them")), "exclude")
	}
	return m.Exclude, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// PolicyFile is the path of the tenant's policy file (Dir joined with the
// manifest's policy), or "" when the tenant uses the built-in default.
func (f *Folder) PolicyFile() string {
	if f.Manifest.Policy == "" {
		return ""
	}
	return filepath.Join(f.Dir, f.Manifest.Policy)
}

// Policy reads the tenant's policy file the way the server enforces it:
// the path is relative to the manifest and may not leave the tenant
// folder; no policy means the built-in default.
func (f *Folder) Policy() (*policy.Enforcer, error) {
	f.policyOnce.Do(func() {
		m := f.Manifest
		if m.Policy == "" {
			f.policy = policy.Default()
			return
		}
		b, err := fs.ReadFile(f.fsys, rel(m.Policy))
		if err != nil {
			f.policyErr = fmt.Errorf("%s: policy %s: %w", f.manifestPath(), m.Policy, err)
			return
		}
		f.policy, f.policyErr = policy.New(b, f.PolicyFile())
	})
	return f.policy, f.policyErr
}

// keyMaterial reads the key the manifest's auth names: an HS256 secret
// (the demo's, an environment variable's, a file's), a PEM public key or a
// JWKS document. Only the key fields of the result are set.
func (f *Folder) keyMaterial() (auth.Config, error) {
	f.keyOnce.Do(func() {
		a, mpath := f.Manifest.Auth, f.manifestPath()
		read := func(name string) ([]byte, error) {
			b, err := fs.ReadFile(f.fsys, rel(name))
			if err != nil {
				return nil, fmt.Errorf("%s: auth: %w", mpath, err)
			}
			return b, nil
		}
		var err error
		switch {
		case f.secret != nil:
			f.key.HS256Secret = f.secret
		case a.HS256SecretEnv != "":
			v := f.getenv(a.HS256SecretEnv)
			if v == "" {
				err = fmt.Errorf("%s: auth: environment variable %s is not set", mpath, a.HS256SecretEnv)
			}
			f.key.HS256Secret = []byte(v)
		case a.HS256SecretFile != "":
			var b []byte
			b, err = read(a.HS256SecretFile)
			f.key.HS256Secret = []byte(strings.TrimRight(string(b), "\r\n"))
		case a.PublicKeyFile != "":
			f.key.PublicKeyPEM, err = read(a.PublicKeyFile)
		case a.JWKSFile != "":
			f.key.JWKS, err = read(a.JWKSFile)
		}
		if err != nil {
			f.key, f.keyErr = auth.Config{}, err
		}
	})
	return f.key, f.keyErr
}

// Verifier is the tenant's token verifier: its key material with the
// manifest's issuer, audience and roles claim.
func (f *Folder) Verifier() (*auth.Verifier, error) {
	cfg, err := f.keyMaterial()
	if err != nil {
		return nil, err
	}
	a := f.Manifest.Auth
	cfg.Issuer, cfg.Audience, cfg.RolesClaim = a.Issuer, a.Audience, a.RolesClaim
	v, err := auth.NewVerifier(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.manifestPath(), err)
	}
	return v, nil
}

// SigningSecret is the HS256 secret the tenant verifies tokens with, for
// `syncplane token`. A tenant that verifies with a public key or a JWKS
// cannot have tokens signed by syncplane.
func (f *Folder) SigningSecret() ([]byte, error) {
	if a := f.Manifest.Auth; f.secret == nil && (a.PublicKeyFile != "" || a.JWKSFile != "") {
		return nil, fmt.Errorf("%s: tenant %s verifies tokens with a public key; syncplane cannot sign them", f.manifestPath(), f.Manifest.ID)
	}
	cfg, err := f.keyMaterial()
	if err != nil {
		return nil, err
	}
	return cfg.HS256Secret, nil
}

// ErrNoValidator is ValidatorConfig's error for a tenant without a
// validator.
var ErrNoValidator = errors.New("the tenant has no validator")

// ValidatorConfig is the plugin host configuration of the tenant's
// validator: the command made absolute, the manifest's limits in the
// host's units. It wraps ErrNoValidator when the manifest has no
// validator section.
func (f *Folder) ValidatorConfig() (pluginhost.Config, error) {
	m := f.Manifest
	v := m.Validator
	if v == nil {
		return pluginhost.Config{}, fmt.Errorf("%s: %w", f.manifestPath(), ErrNoValidator)
	}
	command := v.Command
	if !filepath.IsAbs(command) {
		command = filepath.Join(f.Dir, command)
	}
	command, err := filepath.Abs(command)
	if err != nil {
		return pluginhost.Config{}, fmt.Errorf("%s: validator: %w", f.manifestPath(), err)
	}
	return pluginhost.Config{
		Tenant: m.ID, Command: command, SHA256: v.SHA256,
		Timeout: time.Duration(v.Timeout), MaxConcurrent: v.MaxConcurrent,
		MemoryBytes: uint64(v.MemoryMB) << 20, CPUSeconds: uint64(v.CPUSeconds),
		IdleTimeout: time.Duration(v.IdleTimeout),
	}, nil
}
