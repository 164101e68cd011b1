package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/syncplane/syncplane/core/schema"
)

// Manifest is a tenant's tenant.yaml.
type Manifest struct {
	// ID names the tenant in URLs and storage: [a-z0-9-]{1,40}. Required.
	ID string `yaml:"id"`
	// Schema is a .prisma file or a folder of them, relative to the
	// manifest. Required.
	Schema string `yaml:"schema"`
	// RootModel is the root of the ownership DAG; a record's scope is the
	// primary key of the root record it belongs to. Optional when the
	// schema's prisma-idb generator block (provider "idb-client-generator")
	// states rootModel; when both state it, they must agree. One of them
	// must.
	RootModel string `yaml:"rootModel"`
	// Exclude lists models that are never synced (and get no table); each
	// must exist. Default: the models the generator block leaves out (its
	// exclude, or what its include does not match), or none. When stated
	// it replaces the generator's list and must contain every model of
	// it (it may add models the client has but this server must not
	// sync). The Changelog model is never synced either way.
	Exclude []string `yaml:"exclude"`
	// Auth says how tokens are verified. One key source is required.
	Auth Auth `yaml:"auth"`
	// Policy is a Casbin policy file relative to the manifest; default:
	// the built-in policy (a subject acts in the scope equal to its id).
	Policy string `yaml:"policy"`
	// Validator configures the tenant's validator plugin; nil: none.
	Validator *Validator `yaml:"validator"`
	// Limits bound requests; zero fields take the defaults.
	Limits Limits `yaml:"limits"`
	// RootFromToken, when set, lets the server create the subject's root
	// record from its verified token: it maps fields of the root model to
	// token claims, e.g. {id: sub, email: email, name: name}. Checked at
	// load against the schema: every key is a scalar (column) field of the
	// root model, the root's primary key is mapped, and every required
	// field without @default or @updatedAt (and not a list) is mapped.
	// Unmapped fields take their @default, or null. Default: nil, the
	// client pushes its root record itself.
	RootFromToken map[string]string `yaml:"rootFromToken"`
	// AllowedOrigins are the browser origins allowed to call this tenant's
	// routes cross-origin (CORS): "*" (any origin, listed alone) or
	// entries "scheme://host[:port]" in lowercase, without path or
	// trailing slash, e.g. "https://app.acme.example",
	// "http://localhost:5173", "capacitor://localhost". Default: none, no
	// cross-origin browser access.
	AllowedOrigins []string `yaml:"allowedOrigins"`
	// IdempotencyRetention is how long push remembers an applied event
	// (its subject, its id and its changelog id, in the tenant's
	// _applied_events ledger) to answer a replay of it with its original
	// result and write nothing, e.g. "168h". A replay that comes later is
	// applied again. At least 1m; default 168h (7 days). Rows past it are
	// deleted in small batches, at most once a minute per tenant and
	// server process.
	IdempotencyRetention Duration `yaml:"idempotencyRetention"`
	// TombstoneRetention, when set, is how long the changelog keeps a
	// delete entry (a tombstone) whose record was not written again, e.g.
	// "720h"; older ones are dropped in small batches, at most once a
	// minute per tenant and server process. A device whose cursor is
	// behind a dropped tombstone of one of its scopes is answered 410 Gone
	// and resyncs from an empty cursor (the TypeScript kit does so by
	// itself; a bare prisma-idb client reports the error). At least 1h;
	// default: none, tombstones stay until their record is written again,
	// and no pull is ever answered 410.
	TombstoneRetention Duration `yaml:"tombstoneRetention"`
	// Changelog is "compacted" (the default: the sync changelog alone,
	// holding per scope the latest entry of each record) or "history":
	// push also appends every entry, superseded ones included, with the
	// subject that wrote it and the record as written, to the tenant's
	// _history table, for audit. Pull never reads the history, and
	// syncplane never deletes from it.
	Changelog string `yaml:"changelog"`
	// Database, when set, places the tenant's data (its tables, changelog,
	// scope heads, ledger and notifications) on a PostgreSQL database of
	// its own: "env:NAME" names the environment variable holding its
	// postgres:// URL (a URL in a tenant folder would spread credentials).
	// The platform tables stay on the main database, which must be
	// PostgreSQL. Default: the main database.
	Database string `yaml:"database"`

	file string     // the manifest's path, as given to ParseManifest
	root *yaml.Node // the document's top mapping, for positions
}

// File is the manifest's path as given to ParseManifest.
func (m *Manifest) File() string { return m.file }

// Pos returns the line and column of the value at a key path of the
// manifest (e.g. "rootFromToken", "id"), and whether the file states it.
func (m *Manifest) Pos(path ...string) (line, column int, ok bool) {
	if n := lookup(m.root, path); n != nil {
		return n.Line, n.Column, true
	}
	return 0, 0, false
}

// keyPos returns the line and column of the key at the end of path (the
// key itself, not its value), e.g. rootFromToken's "name", and whether the
// file states it.
func (m *Manifest) keyPos(path ...string) (line, column int, ok bool) {
	parent := lookup(m.root, path[:len(path)-1])
	if parent == nil || parent.Kind != yaml.MappingNode {
		return 0, 0, false
	}
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == path[len(path)-1] {
			return parent.Content[i].Line, parent.Content[i].Column, true
		}
	}
	return 0, 0, false
}

// errorAt is a FileError at the value of path in the manifest, or at its
// deepest stated ancestor.
func (m *Manifest) errorAt(msg string, path ...string) *FileError {
	for ; len(path) > 0; path = path[:len(path)-1] {
		if l, c, ok := m.Pos(path...); ok {
			return &FileError{File: m.file, Line: l, Column: c, Msg: msg}
		}
	}
	return &FileError{File: m.file, Line: 1, Column: 1, Msg: msg}
}

// Auth is a tenant's token verification. Exactly one of HS256SecretEnv,
// HS256SecretFile, PublicKeyFile and JWKSFile must be set; files are
// relative to the manifest.
type Auth struct {
	Issuer          string `yaml:"issuer"`          // required "iss" when set
	Audience        string `yaml:"audience"`        // required in "aud" when set
	HS256SecretEnv  string `yaml:"hs256SecretEnv"`  // environment variable holding the HS256 secret (≥ 32 bytes)
	HS256SecretFile string `yaml:"hs256SecretFile"` // file holding the HS256 secret (≥ 32 bytes, trailing newline trimmed)
	PublicKeyFile   string `yaml:"publicKeyFile"`   // PEM public key: RSA (RS256), P-256 (ES256) or Ed25519 (EdDSA)
	JWKSFile        string `yaml:"jwksFile"`        // JWKS document; tokens pick their key by "kid"
	RolesClaim      string `yaml:"rolesClaim"`      // optional claim with per-scope roles
}

// Validator is a tenant's validator plugin (see core/pluginhost).
type Validator struct {
	Command       string   `yaml:"command"`       // executable, relative to the manifest; required
	SHA256        string   `yaml:"sha256"`        // hex sha256 of the executable, checked before every start; required
	Timeout       Duration `yaml:"timeout"`       // deadline of every call; default 2s
	MaxConcurrent int      `yaml:"maxConcurrent"` // calls in flight; default 4
	MemoryMB      int      `yaml:"memoryMB"`      // address-space limit of the process; default 1024
	CPUSeconds    int      `yaml:"cpuSeconds"`    // CPU-time limit of the process; default 60
	IdleTimeout   Duration `yaml:"idleTimeout"`   // stop the process after this long unused; default 5m
}

// The values of Manifest.Changelog.
const (
	ChangelogCompacted = "compacted"
	ChangelogHistory   = "history"
)

// DefaultIdempotencyRetention is IdempotencyRetention when the manifest
// does not state it.
const DefaultIdempotencyRetention = 7 * 24 * time.Hour

// Duration is a YAML duration such as "2s" or "5m".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 2s or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Limits bound a tenant's requests.
type Limits struct {
	MaxBatch          int     `yaml:"maxBatch"`          // events per push; default 100; more → 413
	MaxBodyBytes      int64   `yaml:"maxBodyBytes"`      // request body size; default 1 MiB; more → 413
	PullPageSize      int     `yaml:"pullPageSize"`      // default pull limit; default 50
	PullPageMax       int     `yaml:"pullPageMax"`       // largest pull limit; default 500
	PullPageBytes     int     `yaml:"pullPageBytes"`     // a pull page stops growing at this many response bytes (it always holds one entry); default 4 MiB
	RequestsPerSecond float64 `yaml:"requestsPerSecond"` // push+pull rate of the tenant; default 0 = unlimited; over it → 429
	Burst             int     `yaml:"burst"`             // requests allowed at once above the rate; default 2×rate (at least 1)
}

func (l *Limits) applyDefaults() {
	if l.MaxBatch == 0 {
		l.MaxBatch = 100
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.PullPageSize == 0 {
		l.PullPageSize = 50
	}
	if l.PullPageMax == 0 {
		l.PullPageMax = 500
	}
	if l.PullPageBytes == 0 {
		l.PullPageBytes = 4 << 20
	}
	if l.RequestsPerSecond > 0 && l.Burst == 0 {
		l.Burst = max(1, int(2*l.RequestsPerSecond))
	}
}

// envName is an environment variable's name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var idPattern = regexp.MustCompile(`^[a-z0-9-]{1,40}$`)

var (
	originScheme = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)
	originHost   = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$`)
)

// originProblem says what is wrong with an allowedOrigins entry, or "" if
// it is "*" or an origin as browsers send it: scheme://host[:port], in
// lowercase, without user, path, query or fragment.
func originProblem(o string) string {
	if o == "*" {
		return ""
	}
	const want = "want \"*\" or scheme://host[:port], e.g. https://app.example.com"
	if strings.ToLower(o) != o {
		return fmt.Sprintf("%q: write origins in lowercase, as browsers send them (%q)", o, strings.ToLower(o))
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || !originScheme.MatchString(scheme) {
		return fmt.Sprintf("%q is not an origin (%s)", o, want)
	}
	if i := strings.IndexAny(rest, "/?#@"); i >= 0 {
		return fmt.Sprintf("%q is not an origin: an origin has no user, path (not even a trailing /), query or fragment", o)
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Sprintf("%q: port %q must be a number from 1 to 65535", o, port)
		}
	}
	if !originHost.MatchString(host) {
		return fmt.Sprintf("%q: %q is not a host name or address (%s)", o, host, want)
	}
	return ""
}

// FileError is a problem at a position of a tenant's file.
type FileError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *FileError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// ParseManifest reads a manifest strictly (unknown keys are errors) and
// checks its fields. file names the manifest in errors.
func ParseManifest(file string, src []byte) (*Manifest, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, yamlError(file, err, nil)
	}
	if len(root.Content) == 0 {
		return nil, &FileError{File: file, Msg: "empty manifest"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	m := Manifest{file: file, root: root.Content[0]}
	if err := dec.Decode(&m); err != nil {
		return nil, yamlError(file, err, root.Content[0])
	}
	at := func(path ...string) (int, int) { // the deepest node of path that exists
		for ; len(path) > 0; path = path[:len(path)-1] {
			if n := lookup(root.Content[0], path); n != nil {
				return n.Line, n.Column
			}
		}
		return 1, 1
	}
	var errs []error
	bad := func(msg string, path ...string) {
		l, c := at(path...)
		errs = append(errs, &FileError{File: file, Line: l, Column: c, Msg: msg})
	}
	switch {
	case m.ID == "":
		bad(`missing "id"`)
	case !idPattern.MatchString(m.ID):
		bad(fmt.Sprintf("id %q must match [a-z0-9-]{1,40}", m.ID), "id")
	}
	if m.Schema == "" {
		bad(`missing "schema" (a .prisma file or a folder of them)`)
	}
	if m.Database != "" {
		if name, ok := strings.CutPrefix(m.Database, "env:"); !ok || !envName.MatchString(name) {
			bad(`database must be "env:NAME", the environment variable holding the tenant's postgres:// URL`, "database")
		}
	}
	sources := 0
	for _, s := range []string{m.Auth.HS256SecretEnv, m.Auth.HS256SecretFile, m.Auth.PublicKeyFile, m.Auth.JWKSFile} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		bad("auth needs exactly one of hs256SecretEnv, hs256SecretFile, publicKeyFile, jwksFile", "auth")
	}
	if v := m.Validator; v != nil {
		if v.Command == "" {
			bad(`validator: missing "command" (the plugin executable)`, "validator")
		}
		if !sha256Pattern.MatchString(v.SHA256) {
			bad(`validator: "sha256" must be the executable's 64-digit lowercase hex sha256 (syncplane plugin hash FILE)`, "validator", "sha256")
		}
		for _, c := range []struct {
			name string
			v    int
		}{{"maxConcurrent", v.MaxConcurrent}, {"memoryMB", v.MemoryMB}, {"cpuSeconds", v.CPUSeconds}} {
			if c.v < 0 {
				bad(fmt.Sprintf("validator.%s must not be negative", c.name), "validator", c.name)
			}
		}
	}
	l := m.Limits
	for _, c := range []struct {
		name string
		v    float64
	}{{"maxBatch", float64(l.MaxBatch)}, {"maxBodyBytes", float64(l.MaxBodyBytes)}, {"pullPageSize", float64(l.PullPageSize)},
		{"pullPageMax", float64(l.PullPageMax)}, {"pullPageBytes", float64(l.PullPageBytes)}, {"requestsPerSecond", l.RequestsPerSecond}, {"burst", float64(l.Burst)}} {
		if c.v < 0 {
			bad(fmt.Sprintf("limits.%s must not be negative", c.name), "limits", c.name)
		}
	}
	for field, claim := range m.RootFromToken {
		switch {
		case field == "":
			bad("rootFromToken: empty field name", "rootFromToken")
		case claim == "":
			bad(fmt.Sprintf("rootFromToken.%s: empty claim name", field), "rootFromToken", field)
		}
	}
	for i, o := range m.AllowedOrigins {
		msg := originProblem(o)
		switch {
		case msg == "" && o == "*" && len(m.AllowedOrigins) > 1:
			msg = `"*" allows every origin; list it alone`
		case msg == "" && slices.Index(m.AllowedOrigins, o) < i:
			msg = fmt.Sprintf("origin %q is listed twice", o)
		}
		if msg != "" {
			l, c := at("allowedOrigins")
			if n := lookup(root.Content[0], []string{"allowedOrigins"}); n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
				l, c = n.Content[i].Line, n.Content[i].Column
			}
			errs = append(errs, &FileError{File: file, Line: l, Column: c, Msg: "allowedOrigins: " + msg})
		}
	}
	switch {
	case m.IdempotencyRetention == 0:
		m.IdempotencyRetention = Duration(DefaultIdempotencyRetention)
	case time.Duration(m.IdempotencyRetention) < time.Minute:
		bad(fmt.Sprintf("idempotencyRetention %s is shorter than 1m", time.Duration(m.IdempotencyRetention)), "idempotencyRetention")
	}
	if r := time.Duration(m.TombstoneRetention); r != 0 && r < time.Hour {
		bad(fmt.Sprintf("tombstoneRetention %s is shorter than 1h", r), "tombstoneRetention")
	}
	switch m.Changelog {
	case "":
		m.Changelog = ChangelogCompacted
	case ChangelogCompacted, ChangelogHistory:
	default:
		bad(fmt.Sprintf("changelog %q is neither %q nor %q", m.Changelog, ChangelogCompacted, ChangelogHistory), "changelog")
	}
	m.Limits.applyDefaults()
	// Compared only when both are valid, and reported at whichever of the
	// two the file sets (pullPageSize may be the default).
	if l.PullPageSize >= 0 && l.PullPageMax >= 0 && m.Limits.PullPageSize > m.Limits.PullPageMax {
		key := "pullPageSize"
		if lookup(root.Content[0], []string{"limits", key}) == nil {
			key = "pullPageMax"
		}
		bad(fmt.Sprintf("limits.pullPageSize (%d) exceeds limits.pullPageMax (%d)", m.Limits.PullPageSize, m.Limits.PullPageMax), "limits", key)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

// yamlError turns yaml.v3's "yaml: line N: msg" into file:N:C: msg. yaml.v3
// reports lines only; when the document parsed (root is not nil) the column
// is that of the node the message is about (an unknown key, a value of the
// wrong type), else of the first node on the line, else 1.
func yamlError(file string, err error, root *yaml.Node) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs []error
	for _, msg := range msgs {
		msg = strings.TrimPrefix(msg, "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			errs = append(errs, &FileError{File: file, Line: line, Column: yamlColumn(root, line, m[2]), Msg: m[2]})
			continue
		}
		errs = append(errs, &FileError{File: file, Msg: msg})
	}
	return errors.Join(errs...)
}

var (
	yamlUnknownField = regexp.MustCompile("^field (.*) not found in type ")
	yamlBadValue     = regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into ")
)

// yamlColumn finds the column of the node msg is about on line.
func yamlColumn(root *yaml.Node, line int, msg string) int {
	var key, value *string
	if m := yamlUnknownField.FindStringSubmatch(msg); m != nil {
		key = &m[1]
	} else if m := yamlBadValue.FindStringSubmatch(msg); m != nil {
		value = &m[1]
	}
	first, match := 0, 0
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		if n == nil || match != 0 {
			return
		}
		if n.Line == line {
			if first == 0 {
				first = n.Column
			}
			if n.Kind == yaml.ScalarNode && (key != nil && isKey && n.Value == *key || value != nil && !isKey && n.Value == *value) {
				match = n.Column
				return
			}
		}
		for i, c := range n.Content {
			walk(c, n.Kind == yaml.MappingNode && i%2 == 0)
		}
	}
	walk(root, false)
	switch {
	case match != 0:
		return match
	case first != 0:
		return first
	}
	return 1
}

// lookup finds the value node at a key path of a mapping.
func lookup(n *yaml.Node, path []string) *yaml.Node {
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// checkRootFromToken checks the manifest's rootFromToken against the root
// model of the tenant's schema.
func checkRootFromToken(m *Manifest, root *schema.Model) error {
	if m.RootFromToken == nil {
		return nil
	}
	var errs []error
	fields := slices.Sorted(maps.Keys(m.RootFromToken))
	for _, name := range fields {
		if root.Field(name) == nil {
			e := m.errorAt(fmt.Sprintf("rootFromToken: %q is not a scalar field of root model %s (%s)", name, root.Name, root.Pos), "rootFromToken")
			if l, c, ok := m.keyPos("rootFromToken", name); ok {
				e.Line, e.Column = l, c
			}
			errs = append(errs, e)
		}
	}
	for _, f := range root.Fields {
		if _, mapped := m.RootFromToken[f.Name]; mapped {
			continue
		}
		switch {
		case slices.Contains(root.PrimaryKey, f.Name):
			errs = append(errs, m.errorAt(fmt.Sprintf("rootFromToken must map the primary key %q of root model %s (%s) to a claim, usually %s: sub", f.Name, root.Name, f.Pos, f.Name), "rootFromToken"))
		case !f.Optional && f.Default == nil && !f.UpdatedAt && !f.List:
			errs = append(errs, m.errorAt(fmt.Sprintf("rootFromToken: required field %q of root model %s (%s) has no @default; map it to a claim", f.Name, root.Name, f.Pos), "rootFromToken"))
		}
	}
	return errors.Join(errs...)
}
