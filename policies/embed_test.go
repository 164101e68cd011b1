package policies_test

import (
	"strings"
	"testing"

	"github.com/casbin/casbin/v2/model"

	"github.com/syncplane/syncplane/policies"
)

func TestModelParses(t *testing.T) {
	t.Parallel()
	m, err := model.NewModelFromString(policies.Model())
	if err != nil {
		t.Fatalf("model.conf: %v", err)
	}
	for sec, keys := range map[string][]string{"r": {"r"}, "p": {"p"}, "g": {"g"}, "e": {"e"}, "m": {"m"}} {
		for _, k := range keys {
			if _, err := m.GetAssertion(sec, k); err != nil {
				t.Errorf("model.conf lacks %s.%s: %v", sec, k, err)
			}
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	got := policies.DefaultPolicy()
	if !strings.Contains(string(got), "p, *, $self, *, *, allow") {
		t.Fatalf("default.csv does not hold the $self rule:\n%s", got)
	}
	got[0] = 'X'
	if policies.DefaultPolicy()[0] == 'X' {
		t.Error("DefaultPolicy returns shared bytes; want a copy")
	}
}
