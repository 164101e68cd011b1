// Package policies holds the platform's Casbin model and default policy,
// embedded in the binary.
//
// model.conf defines the one model every tenant shares: a request is
// (subject, scope, model, action) with action one of create, update, delete,
// pull; policy lines are "p, sub, scope, obj, act, eft" with eft allow or
// deny (deny wins); role lines are "g, user, role, scope" and give user the
// role within that scope (or every scope a pattern such as "org-*" matches).
//
// default.csv reproduces prisma-idb's rule: a subject may do everything in
// the scope equal to its own id ("$self") and nothing elsewhere.
//
// examples/ holds example policies, not embedded: personal.csv (the
// default), teams.csv (roles per team scope), org.csv (scope and model
// wildcards, a deny line that wins) and token-roles.csv (roles granted by a
// token claim). core/policy tests every one of them.
//
// core/policy builds tenant enforcers from Model and, when a tenant names no
// policy file, from DefaultPolicy. The package only exposes the embedded
// files; it has no state and no init side effects.
package policies
