package policies

import (
	_ "embed"
)

//go:embed model.conf
var model string

//go:embed default.csv
var defaultPolicy []byte

// Model returns the text of the platform Casbin model (model.conf).
func Model() string { return model }

// DefaultPolicy returns the default policy (default.csv) in Casbin CSV form.
// The caller gets its own copy and may modify it.
func DefaultPolicy() []byte { return append([]byte(nil), defaultPolicy...) }
