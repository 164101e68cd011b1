package tenant_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/syncplane/syncplane/core/tenant"
)

// good is a valid manifest; its lines are
//
//	1 id, 2 schema, 3 rootModel, 4 auth, 5 hs256SecretEnv.
const good = "id: acme\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\n"

const file = "tenants/acme/tenant.yaml"

func TestParseManifestErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		src  string
		want string
	}{
		"empty": {
			src:  "",
			want: file + ": empty manifest",
		},
		"only-comments": {
			src:  "# nothing here\n",
			want: file + ": empty manifest",
		},
		"malformed-yaml-flow": {
			src:  "id: [acme\n",
			want: file + ":1:1: did not find expected ',' or ']'",
		},
		"malformed-yaml-indent": {
			src:  "id: acme\nschema: schema.prisma\n  rootModel: User\n",
			want: file + ":3:1: mapping values are not allowed in this context",
		},
		"malformed-yaml-tab": {
			src:  "id: acme\n\tschema: schema.prisma\n",
			want: file + ":2:1: found a tab character that violates indentation",
		},
		"duplicate-key": {
			src:  "id: acme\n" + good,
			want: file + `:2:1: mapping key "id" already defined at line 1`,
		},
		"not-a-mapping": {
			src:  "- id: acme\n",
			want: file + ":1:1: cannot unmarshal !!seq into tenant.Manifest",
		},
		"unknown-key": {
			src:  good + "owner: bob\n",
			want: file + ":6:1: field owner not found in type tenant.Manifest",
		},
		"unknown-key-nested": {
			src:  good + "  hs256Secret: hunter2\n",
			want: file + ":6:3: field hs256Secret not found in type tenant.Auth",
		},
		"unknown-keys-all-reported": {
			src: good + "limits:\n  maxBatches: 5\nowner: bob\n",
			want: file + ":7:3: field maxBatches not found in type tenant.Limits\n" +
				file + ":8:1: field owner not found in type tenant.Manifest",
		},
		"wrong-type": {
			src:  good + "limits:\n  maxBatch: lots\n",
			want: file + ":7:13: cannot unmarshal !!str `lots` into int",
		},
		"bad-id-uppercase": {
			src:  "id: Acme\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\n",
			want: file + `:1:5: id "Acme" must match [a-z0-9-]{1,40}`,
		},
		"bad-id-too-long": {
			src:  "schema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\nid: a1234567890123456789012345678901234567890\n",
			want: file + `:5:5: id "a1234567890123456789012345678901234567890" must match [a-z0-9-]{1,40}`,
		},
		"bad-id-underscore": {
			src:  "id: 'acme_corp'\nschema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\n",
			want: file + `:1:5: id "acme_corp" must match [a-z0-9-]{1,40}`,
		},
		"missing-id": {
			src:  "schema: schema.prisma\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\n",
			want: file + `:1:1: missing "id"`,
		},
		"missing-schema": {
			src:  "id: acme\nrootModel: User\nauth:\n  hs256SecretEnv: ACME_SECRET\n",
			want: file + `:1:1: missing "schema" (a .prisma file or a folder of them)`,
		},
		"no-auth": {
			src:  "id: acme\nschema: schema.prisma\nrootModel: User\n",
			want: file + ":1:1: auth needs exactly one of hs256SecretEnv, hs256SecretFile, publicKeyFile, jwksFile",
		},
		"auth-without-key-source": {
			src:  "id: acme\nschema: schema.prisma\nrootModel: User\nauth:\n  issuer: https://acme.example\n",
			want: file + ":5:3: auth needs exactly one of hs256SecretEnv, hs256SecretFile, publicKeyFile, jwksFile",
		},
		"two-key-sources": {
			src:  good + "  publicKeyFile: key.pem\n",
			want: file + ":5:3: auth needs exactly one of hs256SecretEnv, hs256SecretFile, publicKeyFile, jwksFile",
		},
		"validator-short-sha256": {
			src:  good + "validator:\n  command: ./validator\n  sha256: 9f86d0\n  timeout: 2s\n",
			want: file + `:8:11: validator: "sha256" must be the executable's 64-digit lowercase hex sha256 (syncplane plugin hash FILE)`,
		},
		"validator-empty-mapping": {
			src: good + "validator: {}\n",
			want: file + `:6:12: validator: missing "command" (the plugin executable)` + "\n" +
				file + `:6:12: validator: "sha256" must be the executable's 64-digit lowercase hex sha256 (syncplane plugin hash FILE)`,
		},
		"validator-bad-timeout": {
			src:  good + "validator:\n  command: ./v\n  sha256: " + strings.Repeat("ab", 32) + "\n  timeout: soon\n",
			want: file + `:9:3: "soon" is not a duration such as 2s or 5m`,
		},
		"negative-limits": {
			src: good + "limits:\n  maxBatch: -1\n  maxBodyBytes: -2\n  pullPageSize: -3\n  requestsPerSecond: -0.5\n  burst: -4\n",
			want: file + ":7:13: limits.maxBatch must not be negative\n" +
				file + ":8:17: limits.maxBodyBytes must not be negative\n" +
				file + ":9:17: limits.pullPageSize must not be negative\n" +
				file + ":10:22: limits.requestsPerSecond must not be negative\n" +
				file + ":11:10: limits.burst must not be negative",
		},
		// A negative pullPageMax is one problem, not also "pullPageSize
		// exceeds it".
		"negative-pull-page-max": {
			src:  good + "limits:\n  pullPageMax: -5\n",
			want: file + ":7:16: limits.pullPageMax must not be negative",
		},
		"negative-pull-page-bytes": {
			src:  good + "limits:\n  pullPageBytes: -1\n",
			want: file + ":7:18: limits.pullPageBytes must not be negative",
		},
		"pull-page-size-over-max": {
			src:  good + "limits:\n  pullPageSize: 200\n  pullPageMax: 100\n",
			want: file + ":7:17: limits.pullPageSize (200) exceeds limits.pullPageMax (100)",
		},
		"pull-page-size-over-default-max": {
			src:  good + "limits:\n  pullPageSize: 501\n",
			want: file + ":7:17: limits.pullPageSize (501) exceeds limits.pullPageMax (500)",
		},
		// The default pullPageSize (50) is over a small pullPageMax: the
		// error points at the key that is in the file.
		"default-pull-page-size-over-max": {
			src:  good + "limits:\n  pullPageMax: 10\n",
			want: file + ":7:16: limits.pullPageSize (50) exceeds limits.pullPageMax (10)",
		},
		"root-from-token-empty-claim": {
			src:  good + "rootFromToken:\n  id: sub\n  email: ''\n",
			want: file + `:8:10: rootFromToken.email: empty claim name`,
		},
		"root-from-token-not-a-mapping": {
			src:  good + "rootFromToken: [id, sub]\n",
			want: file + ":6:1: cannot unmarshal !!seq into map[string]string",
		},
		"allowed-origins-bad": {
			src: good + "allowedOrigins:\n  - https://app.example.com/\n  - app.example.com\n  - https://App.example.com\n" +
				"  - http://localhost:0\n  - http://localhost:5173\n  - http://localhost:5173\n  - https://user@app.example.com\n  - https://bad_host\n",
			want: file + `:7:5: allowedOrigins: "https://app.example.com/" is not an origin: an origin has no user, path (not even a trailing /), query or fragment` + "\n" +
				file + `:8:5: allowedOrigins: "app.example.com" is not an origin (want "*" or scheme://host[:port], e.g. https://app.example.com)` + "\n" +
				file + `:9:5: allowedOrigins: "https://App.example.com": write origins in lowercase, as browsers send them ("https://app.example.com")` + "\n" +
				file + `:10:5: allowedOrigins: "http://localhost:0": port "0" must be a number from 1 to 65535` + "\n" +
				file + `:12:5: allowedOrigins: origin "http://localhost:5173" is listed twice` + "\n" +
				file + `:13:5: allowedOrigins: "https://user@app.example.com" is not an origin: an origin has no user, path (not even a trailing /), query or fragment` + "\n" +
				file + `:14:5: allowedOrigins: "https://bad_host": "bad_host" is not a host name or address (want "*" or scheme://host[:port], e.g. https://app.example.com)`,
		},
		"idempotency-retention-too-short": {
			src:  good + "idempotencyRetention: 30s\n",
			want: file + ":6:23: idempotencyRetention 30s is shorter than 1m",
		},
		"idempotency-retention-not-a-duration": {
			src:  good + "idempotencyRetention: 7d\n",
			want: file + `:6:1: "7d" is not a duration such as 2s or 5m`,
		},
		"tombstone-retention-too-short": {
			src:  good + "tombstoneRetention: 30m\n",
			want: file + ":6:21: tombstoneRetention 30m0s is shorter than 1h",
		},
		"changelog-unknown": {
			src:  good + "changelog: full\n",
			want: file + `:6:12: changelog "full" is neither "compacted" nor "history"`,
		},
		"database-url-in-manifest": {
			src:  good + "database: postgres://u:p@db/x\n",
			want: file + `:6:11: database must be "env:NAME", the environment variable holding the tenant's postgres:// URL`,
		},
		"database-bad-env-name": {
			src:  good + "database: env:9-x\n",
			want: file + `:6:11: database must be "env:NAME", the environment variable holding the tenant's postgres:// URL`,
		},
		"allowed-origins-star-not-alone": {
			src:  good + "allowedOrigins: [\"*\", \"https://app.example.com\"]\n",
			want: file + `:6:18: allowedOrigins: "*" allows every origin; list it alone`,
		},
		"allowed-origins-not-a-list": {
			src:  good + "allowedOrigins: https://app.example.com\n",
			want: file + ":6:1: cannot unmarshal !!str `https:/...` into []string",
		},
		"several-errors": {
			src: "id: ACME\nrootModel: User\nauth:\n  hs256SecretEnv: A\n  hs256SecretFile: secret\nvalidator:\n  command: ./v\nlimits:\n  maxBatch: -1\n",
			want: file + `:1:5: id "ACME" must match [a-z0-9-]{1,40}` + "\n" +
				file + `:1:1: missing "schema" (a .prisma file or a folder of them)` + "\n" +
				file + ":4:3: auth needs exactly one of hs256SecretEnv, hs256SecretFile, publicKeyFile, jwksFile\n" +
				file + `:7:3: validator: "sha256" must be the executable's 64-digit lowercase hex sha256 (syncplane plugin hash FILE)` + "\n" +
				file + ":9:13: limits.maxBatch must not be negative",
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			m, err := tenant.ParseManifest(file, []byte(tc.src))
			if err == nil {
				t.Fatalf("ParseManifest succeeded with %+v, want error\n%s", m, tc.want)
			}
			if m != nil {
				t.Errorf("ParseManifest returned a manifest with its error: %+v", m)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// Every problem of a manifest is a *FileError naming the file, so callers
// (the reload log, `syncplane migrate`) can show them one per line.
func TestParseManifestErrorsAreFileErrors(t *testing.T) {
	t.Parallel()
	_, err := tenant.ParseManifest(file, []byte("id: ACME\nrootModel: User\n"))
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not a joined error: %v", err, err)
	}
	errs := joined.Unwrap()
	if len(errs) != 3 {
		t.Fatalf("got %d errors, want 3: %v", len(errs), err)
	}
	for _, e := range errs {
		var fe *tenant.FileError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is a %T, not a *tenant.FileError", e, e)
		}
		if fe.File != file || fe.Line < 1 || fe.Column < 1 {
			t.Errorf("%v: file %q line %d column %d", e, fe.File, fe.Line, fe.Column)
		}
	}
}

func TestParseManifestDefaults(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		src  string
		want tenant.Limits
	}{
		"none": {
			src:  good,
			want: tenant.Limits{MaxBatch: 100, MaxBodyBytes: 1 << 20, PullPageSize: 50, PullPageMax: 500, PullPageBytes: 4 << 20},
		},
		"explicit-zeros": {
			src:  good + "limits:\n  maxBatch: 0\n  maxBodyBytes: 0\n  pullPageSize: 0\n  pullPageMax: 0\n  pullPageBytes: 0\n",
			want: tenant.Limits{MaxBatch: 100, MaxBodyBytes: 1 << 20, PullPageSize: 50, PullPageMax: 500, PullPageBytes: 4 << 20},
		},
		"all-set": {
			src:  good + "limits:\n  maxBatch: 10\n  maxBodyBytes: 2048\n  pullPageSize: 20\n  pullPageMax: 20\n  pullPageBytes: 65536\n  requestsPerSecond: 5\n  burst: 7\n",
			want: tenant.Limits{MaxBatch: 10, MaxBodyBytes: 2048, PullPageSize: 20, PullPageMax: 20, PullPageBytes: 65536, RequestsPerSecond: 5, Burst: 7},
		},
		"burst-twice-rate": {
			src:  good + "limits:\n  requestsPerSecond: 10\n",
			want: tenant.Limits{MaxBatch: 100, MaxBodyBytes: 1 << 20, PullPageSize: 50, PullPageMax: 500, PullPageBytes: 4 << 20, RequestsPerSecond: 10, Burst: 20},
		},
		"burst-at-least-one": {
			src:  good + "limits:\n  requestsPerSecond: 0.2\n",
			want: tenant.Limits{MaxBatch: 100, MaxBodyBytes: 1 << 20, PullPageSize: 50, PullPageMax: 500, PullPageBytes: 4 << 20, RequestsPerSecond: 0.2, Burst: 1},
		},
		"no-rate-no-burst": {
			src:  good + "limits:\n  maxBatch: 3\n",
			want: tenant.Limits{MaxBatch: 3, MaxBodyBytes: 1 << 20, PullPageSize: 50, PullPageMax: 500, PullPageBytes: 4 << 20},
		},
		"page-max-under-default-with-size": {
			src:  good + "limits:\n  pullPageSize: 5\n  pullPageMax: 10\n",
			want: tenant.Limits{MaxBatch: 100, MaxBodyBytes: 1 << 20, PullPageSize: 5, PullPageMax: 10, PullPageBytes: 4 << 20},
		},
	}
	for name, tc := range tests {
		t.Run("case="+name, func(t *testing.T) {
			t.Parallel()
			m, err := tenant.ParseManifest(file, []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, m.Limits); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseManifestFields(t *testing.T) {
	t.Parallel()
	src := `# the manifest example of README.md (Tenants), without the validator
id: acme
schema: models
rootModel: User
exclude: [Session, Account]
auth:
  issuer: https://auth.acme.example
  audience: syncplane
  hs256SecretEnv: ACME_JWT_SECRET
  rolesClaim: roles
policy: policy.csv
validator:
rootFromToken: {id: sub, email: email, name: name}
allowedOrigins: ["https://app.acme.example", "http://localhost:5173", "capacitor://localhost", "http://[::1]:8080"]
idempotencyRetention: 48h
tombstoneRetention: 720h
changelog: history
`
	m, err := tenant.ParseManifest(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &tenant.Manifest{
		ID: "acme", Schema: "models", RootModel: "User", Exclude: []string{"Session", "Account"},
		Auth:                 tenant.Auth{Issuer: "https://auth.acme.example", Audience: "syncplane", HS256SecretEnv: "ACME_JWT_SECRET", RolesClaim: "roles"},
		Policy:               "policy.csv",
		Limits:               tenant.Limits{MaxBatch: 100, MaxBodyBytes: 1 << 20, PullPageSize: 50, PullPageMax: 500, PullPageBytes: 4 << 20},
		RootFromToken:        map[string]string{"id": "sub", "email": "email", "name": "name"},
		AllowedOrigins:       []string{"https://app.acme.example", "http://localhost:5173", "capacitor://localhost", "http://[::1]:8080"},
		IdempotencyRetention: tenant.Duration(48 * time.Hour),
		TombstoneRetention:   tenant.Duration(720 * time.Hour),
		Changelog:            tenant.ChangelogHistory,
	}
	// validator: (null) is no validator.
	if diff := cmp.Diff(want, m, cmpopts.IgnoreFields(tenant.Manifest{}, "Validator"), cmpopts.IgnoreUnexported(tenant.Manifest{})); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
}

func TestParseManifestKeySources(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"hs256SecretEnv: S", "hs256SecretFile: secret", "publicKeyFile: key.pem", "jwksFile: jwks.json"} {
		name, _, _ := strings.Cut(key, ":")
		t.Run("source="+name, func(t *testing.T) {
			t.Parallel()
			src := "id: acme\nschema: schema.prisma\nrootModel: User\nauth:\n  " + key + "\n"
			if _, err := tenant.ParseManifest(file, []byte(src)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseManifestAllowedOriginsStar(t *testing.T) {
	t.Parallel()
	m, err := tenant.ParseManifest(file, []byte(good+"allowedOrigins: [\"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"*"}, m.AllowedOrigins); diff != "" {
		t.Errorf("allowedOrigins (-want +got):\n%s", diff)
	}
	if m.File() != file {
		t.Errorf("File() = %q, want %q", m.File(), file)
	}
}
