package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/syncplane/syncplane/core/schema"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/policies"
)

// tenantCmd is "syncplane tenant list|check|init". All three work offline:
// they read (or write) tenant folders and touch no database. Loading a
// tenant also creates or migrates its tables; that is what migrate and
// serve do, and a tenant that passes check can still be refused there
// only for its database (an unset database: env:NAME, a database that
// does not answer, a failed migration).
func (c *cli) tenantCmd() *cobra.Command {
	cmd := groupCmd("tenant", "List, check or scaffold tenant folders (offline: no database)")
	cmd.Long = `List, check or scaffold tenant folders. These commands read (or write) tenant
folders only and touch no database: they check what the server checks when it
loads a tenant (manifest, schema, policy, key material, validator file and
checksum, ids and keys shared between tenants), not its database.`
	cmd.AddCommand(c.tenantListCmd(), c.tenantCheckCmd(), c.tenantInitCmd())
	return cmd
}

func (c *cli) tenantListCmd() *cobra.Command {
	var configFile, tenants string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tenants of the tenants directory: ok, or refused and why",
		Long: `List the tenant folders of the tenants directory (--tenants, else
SYNCPLANE_TENANTS_DIR, else the config file's tenants) with the id each claims
and its status: "ok" when the server would load it, "refused" with the problems
(file:line) that make the server refuse it. Without a tenants directory, the
built-in demo tenant is listed. The database is not touched (see
"syncplane tenant --help"); the exit status is 0 whatever the tenants' status.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := loadConfig(configFile, c.getenv)
			if err != nil {
				return err
			}
			override(&cfg.TenantsDir, tenants)
			return tenantList(cfg.TenantsDir, c.getenv, c.stdout)
		},
	}
	cmd.Flags().SortFlags = false
	cmd.Flags().StringVar(&tenants, "tenants", "", "tenants directory (env SYNCPLANE_TENANTS_DIR; default: the built-in demo tenant)")
	cmd.Flags().StringVar(&configFile, "config", "", "YAML config file, for its tenants key")
	return cmd
}

func (c *cli) tenantCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check DIR",
		Short: "Validate one tenant folder: manifest, schema, policy, key material",
		Long: `Validate one tenant folder as the server does when it loads it: the manifest
(tenant.yaml), the schema with its root model and exclude list, the policy, the
key material, and the validator's file and sha256 when it has one. Every
problem is printed to stderr as file:line:column: message (file: message when
there is no line); the exit status is 1 when there is any. No database is
touched: an unset database: env:NAME variable is only noted.`,
		Example: "  syncplane tenant check tenants/acme",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("tenant check: want exactly one tenant folder DIR")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			r := checkFolder(args[0], c.getenv)
			for _, n := range r.notes {
				fmt.Fprintln(c.stderr, "note:", n)
			}
			if len(r.problems) > 0 {
				for _, p := range r.problems {
					fmt.Fprintln(c.stderr, p)
				}
				return fmt.Errorf("tenant check: %s: %d %s", args[0], len(r.problems), plural(len(r.problems), "problem", "problems"))
			}
			fmt.Fprintf(c.stdout, "ok %s %s\n", r.id, args[0])
			return nil
		},
	}
}

func (c *cli) tenantInitCmd() *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init --from PRISMA_SCHEMA DIR",
		Short: "Scaffold a tenant folder from an app's Prisma schema",
		Long: `Create the tenant folder DIR from an app's Prisma schema (a folder of .prisma
files, such as the app's prisma folder, or one .prisma file):

  DIR/prisma/      the schema's .prisma files, copied (nothing else of the folder)
  DIR/tenant.yaml  the manifest: id from DIR's name (or --id), schema: prisma,
                   auth.hs256SecretFile: hs256.key, policy: policy.csv
  DIR/policy.csv   the built-in default policy: a subject acts in the scope
                   equal to its id
  DIR/hs256.key    a fresh random HS256 key (32 random bytes, hex), mode 0600

The root model and the excluded models are those of the schema's prisma-idb
generator block (provider "idb-client-generator"); the manifest does not
repeat them, so that the app's client and the server read them from one
place. When the block does not state rootModel, give --root-model, which the
manifest then states. An existing DIR is never overwritten. The new folder is
checked as "syncplane tenant check" does; if it fails, it is removed.`,
		Example: "  syncplane tenant init --from ../my-app/prisma tenants/my-app",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("tenant init: want exactly one tenant folder DIR to create")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			o.dir = args[0]
			return tenantInit(o, c.getenv, c.stdout)
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	fs.StringVar(&o.from, "from", "", "the app's Prisma schema: a folder of .prisma files, or one file (required)")
	fs.StringVar(&o.id, "id", "", "tenant id, [a-z0-9-]{1,40} (default: DIR's name)")
	fs.StringVar(&o.rootModel, "root-model", "", "root model, when the schema's prisma-idb generator block does not state it")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

// folderReport is what checkFolder found in a tenant folder.
type folderReport struct {
	id       string // the manifest's id; "" when the manifest does not parse
	folder   *tenant.Folder
	problems []string // each "file:line:column: message" or "file: message"
	notes    []string // what depends on the server's environment, not the folder
}

// checkFolder reads every part of a tenant folder the way the server's
// load does (tenant.Folder), stopping short of the database.
func checkFolder(dir string, getenv func(string) string) folderReport {
	var r folderReport
	f, err := tenant.OpenFolder(dir, getenv)
	if err != nil {
		r.problems = lines(err.Error())
		return r
	}
	r.id, r.folder = f.Manifest.ID, f
	m := f.Manifest
	if _, err := f.Schema(); err != nil {
		r.problems = append(r.problems, lines(atKey(err, m, "schema"))...)
	}
	if _, err := f.Verifier(); err != nil {
		r.problems = append(r.problems, lines(atKey(err, m, "auth"))...)
	}
	if _, err := f.Policy(); err != nil {
		r.problems = append(r.problems, lines(atKey(err, m, "policy"))...)
	}
	if m.Validator != nil {
		cfg, err := f.ValidatorConfig()
		if err == nil {
			var sum string
			if sum, err = fileSHA256(cfg.Command); err == nil && sum != cfg.SHA256 {
				err = fmt.Errorf("%s: validator: %s has sha256 %s, the manifest says %s (syncplane plugin hash)", m.File(), cfg.Command, sum, cfg.SHA256)
			} else if err != nil {
				err = fmt.Errorf("%s: validator: %w", m.File(), err)
			}
		}
		if err != nil {
			r.problems = append(r.problems, lines(atKey(err, m, "validator", "command"))...)
		}
	}
	if _, err := f.DatabaseURL(); err != nil {
		r.notes = append(r.notes, err.Error()+" here (the server refuses the tenant while it is unset in its environment)")
	}
	return r
}

// lines splits a (joined) error message into its lines.
func lines(msg string) []string {
	return strings.Split(strings.TrimRight(msg, "\n"), "\n")
}

// atKey gives an error about the manifest that names its file but no line
// ("tenant.yaml: auth: ...") the line and column of the manifest's key
// path it is about.
func atKey(err error, m *tenant.Manifest, path ...string) string {
	msg, prefix := err.Error(), m.File()+": "
	rest, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		return msg
	}
	for ; len(path) > 0; path = path[:len(path)-1] {
		if l, col, ok := m.Pos(path...); ok {
			return fmt.Sprintf("%s:%d:%d: %s", m.File(), l, col, rest)
		}
	}
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// tenantList prints every tenant folder of root with its status.
func tenantList(root string, getenv func(string) string, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tSTATUS\tFOLDER")
	if root == "" {
		fmt.Fprintf(tw, "demo\tok\t(built-in; no tenants directory is configured)\n")
		return tw.Flush()
	}
	dirs, err := tenant.Dirs(root)
	if err != nil {
		return fmt.Errorf("tenant list: %w", err)
	}
	reports := make([]folderReport, len(dirs))
	byID := map[string][]string{}
	for i, d := range dirs {
		reports[i] = checkFolder(d, getenv)
		if id := reports[i].id; id != "" {
			byID[id] = append(byID[id], d)
		}
	}
	// Two folders claiming one id are both refused; then the shared-key
	// rule, as on the server's first load: in folder order, a tenant that
	// shares a key with one taken before without distinct audiences is
	// refused.
	type taken struct {
		id, audience string
		keys         []string
	}
	var takenKeys []taken
	for i, d := range dirs {
		r := &reports[i]
		if claimants := byID[r.id]; len(claimants) > 1 {
			r.problems = append(r.problems, fmt.Sprintf("tenant id %q is claimed by several folders: %s", r.id, strings.Join(claimants, ", ")))
			continue
		}
		if len(r.problems) > 0 {
			continue
		}
		v, _ := r.folder.Verifier()
		me := taken{r.id, r.folder.Manifest.Auth.Audience, v.Keys()}
		for _, o := range takenKeys {
			if !slices.ContainsFunc(me.keys, func(k string) bool { return slices.Contains(o.keys, k) }) {
				continue
			}
			if me.audience == "" || o.audience == "" || me.audience == o.audience {
				r.problems = append(r.problems, fmt.Sprintf("%s: tenant %s verifies tokens with a key of tenant %s: set auth.audience in both manifests, to distinct values",
					filepath.Join(d, tenant.ManifestFile), me.id, o.id))
				break
			}
		}
		if len(r.problems) == 0 {
			takenKeys = append(takenKeys, me)
		}
	}
	refused := 0
	for i, d := range dirs {
		r := reports[i]
		id := r.id
		if id == "" {
			id = claimedID(d)
		}
		if len(r.problems) == 0 {
			fmt.Fprintf(tw, "%s\tok\t%s\n", id, d)
			continue
		}
		refused++
		fmt.Fprintf(tw, "%s\trefused\t%s\n", id, d)
		for _, p := range r.problems {
			fmt.Fprintf(tw, "\t\t  %s\n", p)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d %s under %s: %d ok, %d refused\n", len(dirs), plural(len(dirs), "tenant folder", "tenant folders"), root, len(dirs)-refused, refused)
	return nil
}

// claimedID is the id a manifest that does not parse still claims, read
// leniently as the server reads it for its one-folder-per-id rule; "?"
// when none can be read.
func claimedID(dir string) string {
	var head struct {
		ID string `yaml:"id"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, tenant.ManifestFile)); err == nil {
		_ = yaml.Unmarshal(b, &head) // a type error elsewhere still fills ID
	}
	if head.ID == "" {
		return "?"
	}
	return head.ID
}

// initOptions are tenant init's arguments.
type initOptions struct {
	from, dir, id, rootModel string
}

// idPattern is a tenant id (tenant.Manifest.ID).
var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

// The files tenant init writes, relative to the tenant folder.
const (
	initSchemaDir = "prisma"
	initPolicy    = "policy.csv"
	initKeyFile   = "hs256.key"
)

// tenantInit scaffolds a tenant folder (see tenantInitCmd).
func tenantInit(o initOptions, getenv func(string) string, stdout io.Writer) (err error) {
	id := o.id
	if id == "" {
		id = filepath.Base(filepath.Clean(o.dir))
	}
	if !idPattern.MatchString(id) {
		if o.id != "" {
			return fmt.Errorf("tenant init: --id %q is not a tenant id ([a-z0-9-]{1,40})", id)
		}
		return fmt.Errorf("tenant init: the folder name %q is not a tenant id ([a-z0-9-]{1,40}); name the folder so, or give --id", id)
	}
	if _, err := os.Lstat(o.dir); err == nil {
		return fmt.Errorf("tenant init: %s already exists; tenant init never overwrites a folder", o.dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tenant init: %w", err)
	}
	s, err := schema.Load(o.from)
	if err != nil {
		return fmt.Errorf("tenant init: %s: %w", o.from, err)
	}
	g := s.IDB
	var genRoot string
	if g != nil {
		genRoot = g.RootModel
	}
	switch {
	case o.rootModel != "" && genRoot != "" && o.rootModel != genRoot:
		return fmt.Errorf("tenant init: --root-model %s contradicts rootModel %q of the schema's generator %s (%s)", o.rootModel, genRoot, g.Name, g.RootModelPos)
	case o.rootModel == "" && genRoot == "" && g != nil:
		return fmt.Errorf("tenant init: the schema's generator %s (%s) states no rootModel: add it there, or give --root-model", g.Name, g.Pos)
	case o.rootModel == "" && genRoot == "":
		return fmt.Errorf("tenant init: the schema has no prisma-idb generator block (provider %q) stating rootModel: give --root-model", schema.IDBProvider)
	}

	if err := os.MkdirAll(filepath.Dir(filepath.Clean(o.dir)), 0o755); err != nil {
		return fmt.Errorf("tenant init: %w", err)
	}
	if err := os.Mkdir(o.dir, 0o755); err != nil {
		return fmt.Errorf("tenant init: %w", err) // exists by now: never overwrite
	}
	defer func() {
		if err != nil {
			os.RemoveAll(o.dir) // the folder is ours: made above
		}
	}()
	copied, err := copySchema(o.from, filepath.Join(o.dir, initSchemaDir))
	if err != nil {
		return fmt.Errorf("tenant init: copy the schema: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, initPolicy), policies.DefaultPolicy(), 0o644); err != nil {
		return fmt.Errorf("tenant init: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("tenant init: key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, initKeyFile), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("tenant init: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, tenant.ManifestFile), initManifest(id, o, s, genRoot), 0o644); err != nil {
		return fmt.Errorf("tenant init: %w", err)
	}
	r := checkFolder(o.dir, getenv)
	if len(r.problems) > 0 {
		return fmt.Errorf("tenant init: the new folder fails tenant check (removed):\n%s", strings.Join(r.problems, "\n"))
	}
	fmt.Fprintf(stdout, "created tenant %s in %s: %s (%d schema %s from %s), %s, %s (default policy), %s (new HS256 key, mode 0600)\n",
		id, o.dir, tenant.ManifestFile, copied, plural(copied, "file", "files"), o.from, initSchemaDir+"/", initPolicy, initKeyFile)
	fmt.Fprintf(stdout, "next: syncplane tenant check %s; syncplane serve --tenants %s; syncplane token --tenants %s --tenant %s --sub SUBJECT\n",
		o.dir, filepath.Dir(filepath.Clean(o.dir)), filepath.Dir(filepath.Clean(o.dir)), id)
	return nil
}

// initManifest is the tenant.yaml tenant init writes.
func initManifest(id string, o initOptions, s *schema.Schema, genRoot string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Tenant %s, scaffolded by `syncplane tenant init --from %s`.\n", id, o.from)
	fmt.Fprintf(&b, "# `syncplane tenant check` validates this folder; README, \"Tenants\", lists every key.\n")
	fmt.Fprintf(&b, "id: %s\n", id)
	fmt.Fprintf(&b, "# The app's Prisma schema (its .prisma files, copied).\n")
	fmt.Fprintf(&b, "schema: %s\n", initSchemaDir)
	if genRoot != "" {
		fmt.Fprintf(&b, "# The root model (%s) and the excluded models (%s) are those of the\n", genRoot, excludedText(s))
		fmt.Fprintf(&b, "# schema's generator block %s, read from there as the app's client reads them.\n", s.IDB.Name)
	} else {
		fmt.Fprintf(&b, "# The root of the ownership DAG: a record's scope is its %s's id.\n", o.rootModel)
		fmt.Fprintf(&b, "rootModel: %s\n", o.rootModel)
		if s.IDB != nil {
			fmt.Fprintf(&b, "# The excluded models (%s) are those of the schema's generator block %s.\n", excludedText(s), s.IDB.Name)
		}
	}
	fmt.Fprintf(&b, "auth:\n")
	fmt.Fprintf(&b, "  # A random HS256 key made for this tenant; keep it secret. To verify tokens of\n")
	fmt.Fprintf(&b, "  # an identity provider instead, name its key (publicKeyFile or jwksFile) and\n")
	fmt.Fprintf(&b, "  # set issuer and audience.\n")
	fmt.Fprintf(&b, "  hs256SecretFile: %s\n", initKeyFile)
	fmt.Fprintf(&b, "# The built-in default policy: a subject acts in the scope equal to its id.\n")
	fmt.Fprintf(&b, "policy: %s\n", initPolicy)
	fmt.Fprintf(&b, "# The browser origins of the app (CORS), e.g. [\"https://app.example.com\"]; none by default.\n")
	fmt.Fprintf(&b, "# allowedOrigins: []\n")
	return b.Bytes()
}

// excludedText lists the models the generator block leaves out.
func excludedText(s *schema.Schema) string {
	ex := s.IDB.Excluded(s)
	if len(ex) == 0 {
		return "none"
	}
	return strings.Join(ex, ", ")
}

// copySchema copies the .prisma files of from (a file, or a folder read
// as the server reads a schema folder: recursively, hidden entries
// skipped) into the new folder to, and returns how many it copied.
func copySchema(from, to string) (int, error) {
	info, err := os.Stat(from)
	if err != nil {
		return 0, err
	}
	if err := os.Mkdir(to, 0o755); err != nil {
		return 0, err
	}
	if !info.IsDir() {
		return 1, copyFile(from, filepath.Join(to, filepath.Base(from)))
	}
	n := 0
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != from && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || filepath.Ext(p) != ".prisma" {
			return nil
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		n++
		return copyFile(p, dst)
	})
	return n, err
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
