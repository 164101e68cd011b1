package kanbanrulesnode_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: go-plugin's
// client goroutines must all end once the plugin is killed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
