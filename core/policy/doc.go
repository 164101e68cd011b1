// Package policy decides whether a subject may act on a model within a scope
// of a tenant, using Casbin with the platform model from package policies.
//
// Each tenant gets its own Enforcer, built with New from the tenant's policy
// file (Casbin CSV lines) or with Default from the embedded default policy,
// which reproduces prisma-idb: a subject may do everything in the scope
// equal to its own id and nothing elsewhere. The push and pull services ask
// Allow before they touch a scope; the pull service asks Scopes for the
// scopes to offer a subject; `syncplane policy explain` asks Explain for the
// lines behind a decision. The tenant loader builds a new Enforcer when a
// policy file changes and keeps the previous one when New refuses the file.
// An Enforcer never changes, so it caches its decisions (bounded).
//
// Policy file format, one rule per line; blank lines and lines starting with
// # are ignored:
//
//	p, <subject|*|role>, <scope|$self|pattern>, <model|pattern>, <create|update|delete|pull|*>, <allow|deny>
//	g, <user>, <role>, <scope|pattern>
//
// Patterns use Casbin's keyMatch: "*" matches anything and "org-*" matches
// every scope starting with "org-"; a * may only end a pattern. "$self"
// matches the scope equal to the subject. A g line gives user the role
// within the scope, or within every scope its pattern matches; p lines
// naming the role then apply to that user there. A role that the subject's
// token grants for a scope (auth.rolesClaim) applies the same way in that
// scope only. Deny lines win over allow lines. Role names share the
// namespace of subjects, so pick role names that no subject id can take
// (for example "role:editor"). Example policies, one per use case, are in
// policies/examples.
package policy
