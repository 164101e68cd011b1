package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/syncplane/syncplane/core/policy"
	"github.com/syncplane/syncplane/core/tenant"
	"github.com/syncplane/syncplane/policies"
)

// policyCmd is "syncplane policy check|explain". Both work offline: they
// read tenant manifests and policy files and touch no database.
func (c *cli) policyCmd() *cobra.Command {
	cmd := groupCmd("policy", "Check tenants' policy files, or explain a decision")
	cmd.Long = `Check tenants' policy files, or explain a decision. Both work offline: they
read tenant manifests and policy files and touch no database. --tenants
defaults to $SYNCPLANE_TENANTS_DIR; without either, the built-in default policy
(that of the demo tenant) is used.`
	var tenants string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate every tenant's policy file (exit status 1 on any error)",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			return policyCheck(tenantsDir(tenants, c.getenv), c.getenv, c.stdout, c.stderr)
		},
	}
	check.Flags().StringVar(&tenants, "tenants", "", "tenants directory (env SYNCPLANE_TENANTS_DIR; default: the built-in default policy)")
	var q explainQuery
	explain := &cobra.Command{
		Use:     "explain --tenant T --sub S --scope K --model M --act A",
		Short:   "Print the decision on one request and the policy lines that made it",
		Example: "  syncplane policy explain --tenant demo --sub u1 --scope u1 --model Todo --act create",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			return policyExplain(tenantsDir(tenants, c.getenv), c.getenv, q, c.stdout)
		},
	}
	fs := explain.Flags()
	fs.SortFlags = false
	fs.StringVar(&q.tenant, "tenant", "", "tenant id")
	fs.StringVar(&q.sub, "sub", "", "subject (the token's sub claim)")
	fs.StringVar(&q.scope, "scope", "", "scope key")
	fs.StringVar(&q.model, "model", "", "model name")
	fs.StringVar(&q.act, "act", "", "action: create, update, delete or pull")
	fs.StringVar(&q.role, "role", "", "role the token grants the subject in the scope (auth.rolesClaim)")
	fs.StringVar(&tenants, "tenants", "", "tenants directory (env SYNCPLANE_TENANTS_DIR; default: the demo tenant)")
	cmd.AddCommand(check, explain)
	return cmd
}

// noArgs refuses positional arguments: "<command>: unexpected arguments".
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", strings.TrimPrefix(cmd.CommandPath(), "syncplane "), args)
	}
	return nil
}

func tenantsDir(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	return getenv("SYNCPLANE_TENANTS_DIR")
}

// builtinSource names the built-in default policy in output.
const builtinSource = "policies/default.csv"

// tenantPolicy is the policy a tenant folder declares: its manifest's id,
// the policy file (builtinSource for the default) and the enforcer built
// from it.
type tenantPolicy struct {
	id     string
	file   string
	policy *policy.Enforcer
}

// loadTenantPolicy reads the manifest and the policy of the tenant folder
// dir as the server does (tenant.Folder.Policy): the policy path is
// relative to the manifest and may not leave the tenant folder; no policy
// means the built-in default. id is set whenever the manifest parses, even
// when the policy is refused.
func loadTenantPolicy(dir string, getenv func(string) string) (tenantPolicy, error) {
	f, err := tenant.OpenFolder(dir, getenv)
	if err != nil {
		return tenantPolicy{}, err
	}
	tp := tenantPolicy{id: f.Manifest.ID, file: f.PolicyFile()}
	if tp.file == "" {
		tp.file = builtinSource
	}
	tp.policy, err = f.Policy()
	return tp, err
}

// policyCheck validates the policy of every tenant under dir, or the
// built-in default when dir is "". It prints "ok <tenant> <file>" for every
// good one and the errors (file:line: problem) of the others to stderr.
func policyCheck(dir string, getenv func(string) string, stdout, stderr io.Writer) error {
	if dir == "" {
		if _, err := policy.New(policies.DefaultPolicy(), builtinSource); err != nil {
			fmt.Fprintln(stderr, err)
			return errors.New("policy check: the built-in default policy is broken")
		}
		fmt.Fprintf(stdout, "ok (built-in) %s\n", builtinSource)
		return nil
	}
	dirs, err := tenant.Dirs(dir)
	if err != nil {
		return fmt.Errorf("policy check: %w", err)
	}
	if len(dirs) == 0 {
		return fmt.Errorf("policy check: no tenant folders (with %s) under %s", tenant.ManifestFile, dir)
	}
	failed := 0
	for _, d := range dirs {
		tp, err := loadTenantPolicy(d, getenv)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "ok %s %s\n", tp.id, tp.file)
	}
	if failed > 0 {
		return fmt.Errorf("policy check: %d of %d tenants refused", failed, len(dirs))
	}
	return nil
}

// explainQuery is the request "syncplane policy explain" decides.
type explainQuery struct {
	tenant, sub, scope, model, act, role string
}

// policyExplain prints "allow" or "deny" and then the deciding lines of
// the tenant's policy, one "file:line: text" each.
func policyExplain(dir string, getenv func(string) string, q explainQuery, stdout io.Writer) error {
	for _, f := range []struct{ name, v string }{{"tenant", q.tenant}, {"sub", q.sub}, {"scope", q.scope}, {"model", q.model}, {"act", q.act}} {
		if f.v == "" {
			return fmt.Errorf("policy explain: --%s is required", f.name)
		}
	}
	var e *policy.Enforcer
	if dir == "" {
		if q.tenant != "demo" {
			return fmt.Errorf("policy explain: no tenants directory is configured, so the only tenant is %q", "demo")
		}
		var err error
		if e, err = tenant.DemoFolder(nil, getenv).Policy(); err != nil {
			return fmt.Errorf("policy explain: %w", err)
		}
	} else {
		dirs, err := tenant.Dirs(dir)
		if err != nil {
			return fmt.Errorf("policy explain: %w", err)
		}
		var unreadable []error // folders whose manifest does not say its id
		for _, d := range dirs {
			tp, err := loadTenantPolicy(d, getenv)
			if tp.id == "" && err != nil {
				unreadable = append(unreadable, err)
			}
			if tp.id != q.tenant {
				continue
			}
			if err != nil {
				return fmt.Errorf("policy explain: %w", err)
			}
			e = tp.policy
			break
		}
		if e == nil {
			return errors.Join(fmt.Errorf("policy explain: no tenant %q under %s", q.tenant, dir), errors.Join(unreadable...))
		}
	}
	var roles map[string]string
	if q.role != "" {
		roles = map[string]string{q.scope: q.role}
	}
	allowed, lines, err := e.Explain(q.sub, roles, q.scope, q.model, q.act)
	if err != nil {
		return fmt.Errorf("policy explain: %w", err)
	}
	verdict := "deny"
	if allowed {
		verdict = "allow"
	}
	fmt.Fprintln(stdout, verdict)
	if len(lines) == 0 && !allowed {
		fmt.Fprintln(stdout, "no line matched: denied by default")
	}
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}
